import ClusterProtocol
import Testing

@testable import SessionCluster

/// A node refuses, at creation and in a sentence naming the setting, a configuration it
/// could not run with, instead of starting a cluster that never settles.
@Suite struct ConfigurationTests {
    /// What `SessionCluster.init` says of `configuration`, or nil when it accepts it.
    static func refusal(_ configuration: SessionClusterConfiguration) -> String? {
        do {
            _ = try SessionCluster(configuration: configuration)
            return nil
        } catch {
            guard case .invalidConfiguration(let reason) = error else { return "unexpected \(error)" }
            return reason
        }
    }

    @Test func theDefaultsAndTheLocalProfileAreAccepted() {
        let defaults = SessionClusterConfiguration(
            nodeID: "n1", bindAddress: PeerAddress(host: "127.0.0.1", port: 0), seeds: [],
            clusterKey: Array("a-cluster-key-of-32-bytes-000000".utf8))
        #expect(Self.refusal(defaults) == nil)
        #expect(Self.refusal(.local(id: "n1")) == nil)
    }

    /// Below four state-transfer chunks, every chunk would overflow a peer's queue.
    @Test func aPerPeerQueueBoundBelowFourTransferChunksIsRefused() {
        var configuration = SessionClusterConfiguration.local(id: "n1")
        configuration.maxQueuedBytesPerPeer = 256 * 1024
        #expect(Self.refusal(configuration)?.contains("maxQueuedBytesPerPeer") == true)
        configuration.maxQueuedBytesPerPeer = SessionClusterConfiguration.minimumQueuedBytesPerPeer
        #expect(Self.refusal(configuration) == nil)
    }

    /// Timers are whole milliseconds: 900 µs would be a heartbeat of 0, a timer that spins.
    @Test func aTimerUnderOneMillisecondIsRefused() {
        var configuration = SessionClusterConfiguration.local(id: "n1")
        configuration.writeTimeout = .microseconds(900)
        #expect(Self.refusal(configuration) == "writeTimeout must be at least 1 ms, got 0 ms")
    }

    /// A lease no longer than the heartbeat runs out between two renewals: no owner could
    /// ever acknowledge a write. Likewise a suspicion or election timeout that a healthy
    /// leader's heartbeats cannot beat.
    @Test func timeoutsThatHeartbeatsCannotRenewAreRefused() {
        let settings: [(String, WritableKeyPath<SessionClusterConfiguration, Duration>)] = [
            ("lease", \.lease), ("suspectAfter", \.suspectAfter),
        ]
        for (name, path) in settings {
            var configuration = SessionClusterConfiguration.local(id: "n1")
            configuration.heartbeatInterval = .milliseconds(100)
            configuration[keyPath: path] = .milliseconds(100)
            #expect(Self.refusal(configuration)?.hasPrefix("\(name) (100 ms) must be longer than heartbeatInterval") == true, "\(name)")
        }
        var configuration = SessionClusterConfiguration.local(id: "n1")
        configuration.electionTimeout = .milliseconds(40) ... .milliseconds(300)
        #expect(Self.refusal(configuration)?.hasPrefix("electionTimeout's lower bound (40 ms)") == true)
        configuration = .local(id: "n1")
        configuration.downAfter = .milliseconds(100)
        #expect(Self.refusal(configuration)?.hasPrefix("downAfter (100 ms) must not be shorter than suspectAfter") == true)
    }

    @Test func anEmptyNodeIDOrNoPartitionsAreRefused() {
        #expect(Self.refusal(.local(id: ""))?.hasPrefix("a node id must be 1 to 255 bytes") == true)
        var configuration = SessionClusterConfiguration.local(id: "n1")
        configuration.partitionCount = 0
        #expect(Self.refusal(configuration) == "partitionCount must be at least 1, got 0")
    }
}
