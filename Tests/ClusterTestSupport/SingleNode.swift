import SessionCluster

/// A one-node cluster on 127.0.0.1 (the `.local` profile), started for one test.
package enum SingleNode {
    package struct NotReady: Error {}

    package static func with(
        configure: (inout SessionClusterConfiguration) -> Void = { _ in }, _ body: (SessionCluster) async throws -> Void
    ) async throws {
        var configuration = SessionClusterConfiguration.local(id: "h1")
        // One node has no backup to acknowledge `.replicated(1)`.
        configuration.writeConcern = .local
        configure(&configuration)
        let cluster = try SessionCluster(configuration: configuration)
        try await cluster.start()
        do {
            let deadline = ContinuousClock.now + .seconds(15)
            while !(await cluster.isReady()) {
                guard ContinuousClock.now < deadline else { throw NotReady() }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await body(cluster)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()
    }
}
