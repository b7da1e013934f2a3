import ArgumentParser

/// `session-node`: a runnable node of the session cluster, and the tools around it.
///
/// Each subcommand lives in its own file; to add one, list it in
/// ``SessionNode/subcommandTypes`` (Subcommands.swift).
@main
struct SessionNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session-node",
        abstract: "An embedded, replicated HTTP session store: run a node, or the tools around it.",
        subcommands: subcommandTypes)
}
