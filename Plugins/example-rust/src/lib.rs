//! A circusd plugin in Rust, the twin of Plugins/example-c: it counts watcher events (it
//! subscribes to the topic prefix "watcher.") and answers the command "<instance>.count"
//! with {"count": n}.
//!
//! What a Rust plugin must take care of:
//!  - The one export, circus_plugin_describe, returns a pointer to a static descriptor
//!    (see the end of this file): no allocation, as the header asks.
//!  - Nothing may unwind across the ABI: Cargo.toml makes a panic abort, and the code
//!    below checks what the host hands over rather than unwrapping it.
//!  - Every callback of one instance runs on that instance's own queue, one at a time, so
//!    the instance (a Box, its pointer passed as `ud`) needs no locks.

mod abi;

use abi::*;
use std::os::raw::{c_char, c_void};
use std::ptr;

/// One instance of the plugin: what a `[plugin:NAME]` section creates.
struct Counter {
    api: *const circus_host_api,
    host: *mut circus_host,
    command: String,
    events: u64,
}

impl Counter {
    fn api(&self) -> &circus_host_api {
        // Valid from create() until destroy() returns (the header's promise).
        unsafe { &*self.api }
    }

    fn log(&self, level: circus_log_level, message: &str) {
        if let Some(log) = self.api().log {
            unsafe { log(self.host, level, circus_str::of(message)) }
        }
    }
}

// ---- callbacks (each runs on the instance's queue) ----------------------------------------

unsafe extern "C" fn on_watcher_event(ud: *mut c_void, _topic: circus_str, _json: circus_str) {
    if let Some(counter) = (ud as *mut Counter).as_mut() {
        counter.events += 1;
    }
}

unsafe extern "C" fn on_count(ud: *mut c_void, _name: circus_str, _args: circus_str, reply: *mut circus_reply) {
    if let Some(counter) = (ud as *const Counter).as_ref() {
        let body = format!("{{\"count\": {}}}", counter.events);
        if let Some(answer) = counter.api().reply {
            answer(reply, CIRCUS_OK, circus_str::of(&body));
        }
    }
}

// ---- lifecycle ------------------------------------------------------------------------------

unsafe extern "C" fn create(
    p: *const circus_create_params,
    out: *mut *mut c_void,
    _err: *mut circus_error,
) -> circus_status {
    let Some(params) = p.as_ref() else { return CIRCUS_E_INVALID };
    if params.api.is_null() || out.is_null() {
        return CIRCUS_E_INVALID;
    }
    let counter = Box::new(Counter {
        api: params.api,
        host: params.host,
        command: format!("{}.count", params.instance_name.as_str()),
        events: 0,
    });
    *out = Box::into_raw(counter) as *mut c_void; // freed in destroy
    CIRCUS_OK
}

unsafe extern "C" fn start(instance: *mut c_void, err: *mut circus_error) -> circus_status {
    let Some(counter) = (instance as *const Counter).as_ref() else { return CIRCUS_E_INVALID };
    let api = counter.api();
    // No dtors: the instance outlives every registration (the host ends them before destroy).
    let mut status = match api.subscribe {
        Some(subscribe) => subscribe(
            counter.host,
            circus_str::of("watcher."),
            Some(on_watcher_event),
            instance,
            None,
            ptr::null_mut(),
        ),
        None => CIRCUS_E_INTERNAL,
    };
    if status == CIRCUS_OK {
        let meta = "{\"help\": \"how many watcher events this instance has seen\", \"args\": {}}";
        status = match api.register_command {
            Some(register) => register(
                counter.host,
                circus_str::of(&counter.command),
                circus_str::of(meta),
                CIRCUS_COMMAND_F_READ_ONLY,
                Some(on_count),
                instance,
                None,
                ptr::null_mut(),
            ),
            None => CIRCUS_E_INTERNAL,
        };
    }
    if status != CIRCUS_OK {
        if let Some(set_error) = api.set_error {
            set_error(err, status, circus_str::of("could not register with the host"));
        }
        return status;
    }
    counter.log(CIRCUS_LOG_INFO, "counting watcher events (Rust)");
    CIRCUS_OK
}

unsafe extern "C" fn destroy(instance: *mut c_void) {
    if !instance.is_null() {
        drop(Box::from_raw(instance as *mut Counter));
    }
}

// ---- the descriptor and the entry point --------------------------------------------------------

/// Raw pointers are not Sync; this descriptor is immutable and lives forever, so sharing
/// it between threads is sound.
#[repr(transparent)]
struct Static<T>(T);
unsafe impl<T> Sync for Static<T> {}

static VTABLE: Static<circus_plugin_vtable> = Static(circus_plugin_vtable {
    struct_size: std::mem::size_of::<circus_plugin_vtable>() as u32,
    reserved0: 0,
    create: Some(create),
    start: Some(start),
    stop: None, // no threads of its own
    destroy: Some(destroy),
    reconfigure: None, // a new config recreates the instance
});

static DESCRIPTOR: Static<circus_plugin_descriptor> = Static(circus_plugin_descriptor {
    magic: CIRCUS_PLUGIN_MAGIC,
    struct_size: std::mem::size_of::<circus_plugin_descriptor>() as u32,
    abi_major: CIRCUS_ABI_MAJOR,
    abi_minor: CIRCUS_ABI_MINOR,
    name: b"example_rust\0".as_ptr() as *const c_char,
    version: b"1.0.0\0".as_ptr() as *const c_char,
    description: b"counts watcher events; a template for plugins in Rust\0".as_ptr() as *const c_char,
    flags: CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    vtable: &VTABLE.0,
});

/// The plugin's one entry point, looked up by circusd with dlsym.
#[no_mangle]
pub extern "C" fn circus_plugin_describe(host_abi_major: u32, _host_abi_minor: u32) -> *const circus_plugin_descriptor {
    // Nothing newer than 1.0 is used, so any 1.x host will do.
    if host_abi_major == CIRCUS_ABI_MAJOR {
        &DESCRIPTOR.0
    } else {
        ptr::null()
    }
}
