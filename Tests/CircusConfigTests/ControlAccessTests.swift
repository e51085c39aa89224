// The [circus] grants: names resolved at load, unknown ones refused with file, line and
// option, and the control socket file's mode that follows from them.

import CircusConfig
import Testing

@Suite struct ControlAccessTests {
    @Test func namesAndIdsAreResolvedAtLoad() throws {
        let settings = try loadConfiguration("""
            [circus]
            control_users = nobody, 4242
            readonly_users = root
            """).settings
        #expect(settings.access.controlUIDs == [65534, 4242])
        #expect(settings.access.readOnlyUIDs == [0])
        #expect(settings.access.socketFileMode.mode == 0o666)
    }

    @Test func groupsGrantTheirPrimaryAndListedMembers() throws {
        // nobody's primary group is nogroup (65534) in the tests' account table.
        let access = try loadConfiguration("[circus]\ncontrol_groups = nogroup\n").settings.access
        #expect(access.controlGroups == [65534])
        #expect(access.controlUIDs.contains(65534))
        #expect(access.socketFileMode.mode == 0o660)
        #expect(access.socketFileMode.group == 65534)
    }

    @Test func aGroupGrantsTheUsersItLists() throws {
        let access = try loadConfiguration("[circus]\nreadonly_groups = staff\n").settings.access
        #expect(access.readOnlyGroups == [50])
        #expect(access.readOnlyUIDs == [65534])
        #expect(access.controlUIDs == [])
    }

    @Test func noGrantMeans0600() throws {
        let access = try loadConfiguration("[circus]\ncheck_delay = 1\n").settings.access
        #expect(access == ControlAccess())
        #expect(access.socketFileMode.mode == 0o600)
        #expect(access.socketFileMode.group == nil)
    }

    @Test func unknownNamesAreConfigErrors() {
        #expect(throws: ConfigError(file: "circus.ini", line: 3, section: "circus", option: "control_users",
                                    message: "no user is named 'no-such-user'")) {
            try loadConfiguration("[circus]\ncheck_delay = 1\ncontrol_users = root, no-such-user\n")
        }
        #expect(throws: ConfigError(file: "circus.ini", line: 2, section: "circus", option: "readonly_groups",
                                    message: "no group is named 'no-such-group'")) {
            try loadConfiguration("[circus]\nreadonly_groups = no-such-group\n")
        }
    }
}
