import ArgumentParser

extension SessionNode {
    /// Every subcommand of `session-node`, one line each.
    static let subcommandTypes: [any ParsableCommand.Type] = [
        Serve.self,
        Demo.self,
        Certs.self,
    ]
}
