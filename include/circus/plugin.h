/*
 * circus/plugin.h: the stable C ABI of circus-swift plugins.
 *
 * Placeholder: the ABI is designed in shared/design/plugin-abi.md and lands with the
 * plugin-host issue. Plugins will include only this header and export one function,
 * circus_plugin_describe(host_major, host_minor).
 */
#ifndef CIRCUS_PLUGIN_H
#define CIRCUS_PLUGIN_H

#define CIRCUS_PLUGIN_ABI_MAJOR 1
#define CIRCUS_PLUGIN_ABI_MINOR 0

#endif /* CIRCUS_PLUGIN_H */
