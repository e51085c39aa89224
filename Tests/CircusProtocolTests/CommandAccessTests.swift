// Every command's grant, in one table: what a read-only user may send.

import CircusProtocol
import Testing

@Suite struct CommandAccessTests {
    @Test func readOnlyCommandsAreExactlyTheStateReports() {
        let readOnly = CommandName.allCases.filter { $0.access == .readOnly }.map(\.rawValue).sorted()
        #expect(readOnly == ["dstats", "globaloptions", "list", "listsockets", "numprocesses", "numwatchers", "stats", "status"])
    }

    @Test func commandsShowingEnvironmentsNeedControl() {
        #expect(CommandName.options.access == .control)
        #expect(CommandName.get.access == .control)
    }

    @Test func refusalsNameTheUidAndTheGrant() {
        let error = CommandError.notPermitted(uid: 65534, command: "add", access: .control)
        #expect(error.code == .osError)
        #expect(error.reason == "uid 65534 may not send 'add': grant it with control_users or control_groups in [circus] (root, circusd's own user and endpoint_owner may send every command)")
    }
}
