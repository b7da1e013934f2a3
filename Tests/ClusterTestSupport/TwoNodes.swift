import SessionCluster

/// Two nodes on 127.0.0.1, the second seeded with the first, both in one view with every
/// partition filled and holding their leases, started for one test.
package enum TwoNodes {
    package struct NotReady: Error {}

    package static func with(_ body: (SessionCluster, SessionCluster) async throws -> Void) async throws {
        let first = try SessionCluster(configuration: .local(id: "a"))
        try await first.start()
        let second = try SessionCluster(configuration: .local(id: "b", seeds: [first.boundAddress!]))
        do {
            try await second.start()
            let deadline = ContinuousClock.now + .seconds(15)
            while true {
                let statuses = [try? await first.status(), try? await second.status()]
                // An owner without its lease yet refuses writes (notInMajority): wait for both.
                if statuses.allSatisfy({ $0?.members.count == 2 && $0?.partitionsFilling == 0 && $0?.leaseValid == true }) { break }
                guard ContinuousClock.now < deadline else { throw NotReady() }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await body(first, second)
        } catch {
            await first.shutdown()
            await second.shutdown()
            throw error
        }
        await first.shutdown()
        await second.shutdown()
    }
}
