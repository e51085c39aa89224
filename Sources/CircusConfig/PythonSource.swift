// Python text that more than one of circusd's Python helpers runs, kept in one place.

/// Python source shared by the scripts circusd hands to `python -c`.
package enum PythonSource {
    /// `resolve_name(name)`, as Circus's `circus.util.resolve_name` finds a callable:
    /// `pkg.mod:obj` or `pkg.mod.obj` (the last dotted part an attribute of the module);
    /// with `reload`, the module is imported anew first, as Circus's `set` of a hook does.
    package static let resolveName = """
        def resolve_name(name, reload=False):
            import importlib
            if ":" in name:
                module, attr = name.split(":", 1)
            elif "." in name:
                module, attr = name.rsplit(".", 1)
            else:
                module, attr = name, ""
            obj = importlib.import_module(module)
            if reload:
                obj = importlib.reload(obj)
            if not attr:
                return obj
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj

        """
}
