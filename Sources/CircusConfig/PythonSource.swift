// Python text that more than one of circusd's Python helpers runs, kept in one place.

/// Python source shared by the scripts circusd hands to `python -c`.
package enum PythonSource {
    /// `resolve_name(name)`, as Circus's `circus.util.resolve_name` finds a callable:
    /// `pkg.mod:obj` or `pkg.mod.obj` (the last dotted part an attribute of the module).
    package static let resolveName = """
        def resolve_name(name):
            import importlib
            if ":" in name:
                module, attr = name.split(":", 1)
            elif "." in name:
                module, attr = name.rsplit(".", 1)
            else:
                return importlib.import_module(name)
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj

        """
}
