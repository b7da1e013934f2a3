import ArgumentParser
import Foundation
import Logging
import SessionCluster

/// The command-line options of a process that runs one cluster node: `session-node serve`
/// and the example apps take the same ones.
public struct ClusterOptions: ParsableArguments {
    @Option(help: "This node's id, stable across restarts.")
    public var id: String

    @Option(help: "HOST:PORT of the HTTP API.")
    public var http: String

    @Option(help: "HOST:PORT for peers: TCP and UDP on the same port.")
    public var bind: String

    @Option(name: .customLong("seed"), help: "HOST:PORT of a node to contact at start; repeat for several.")
    public var seeds: [String] = []

    @Option(help: "Copies of each session (owner plus backups).")
    public var replicas: Int = 2

    @Option(help: "A file holding the cluster key (at least 16 bytes; surrounding whitespace ignored).")
    public var clusterKeyFile: String?

    @Option(help: "Seconds a session may stay unused before it expires (the store's default: 1800).")
    public var idleTimeout: Double?

    @Option(help: "A file holding the token a backend presents to sign a session in (PUT /session/principal); without it, signing in over HTTP is refused.")
    public var signInTokenFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: Logger.Level = .info

    public init() {}

    public func validate() throws {
        guard PeerAddress(http) != nil else { throw ValidationError("--http must be HOST:PORT, got '\(http)'") }
        guard PeerAddress(bind) != nil else { throw ValidationError("--bind must be HOST:PORT, got '\(bind)'") }
        for seed in seeds where PeerAddress(seed) == nil { throw ValidationError("--seed must be HOST:PORT, got '\(seed)'") }
        guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
        if let idleTimeout, !(idleTimeout > 0) { throw ValidationError("--idle-timeout must be positive") }
    }

    /// The HTTP address.
    public var httpAddress: PeerAddress { PeerAddress(http)! }

    /// Sends every log line at `--log-level` or above to standard error.
    public func bootstrapLogging() {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// The sign-in token from `--sign-in-token-file`, if given.
    public func signInToken() throws -> String? {
        guard let signInTokenFile else { return nil }
        return try String(contentsOfFile: signInTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The node's configuration. Without `--cluster-key-file` the development key is used
    /// and a warning logged.
    public func configuration(logger: Logger) throws -> SessionClusterConfiguration {
        var configuration = SessionClusterConfiguration(
            nodeID: NodeID(id), bindAddress: PeerAddress(bind)!, seeds: seeds.compactMap(PeerAddress.init),
            clusterKey: SessionClusterConfiguration.developmentClusterKey)
        configuration.replicationFactor = replicas
        if let idleTimeout { configuration.store.defaultMaxInactive = .milliseconds(Int64(idleTimeout * 1000)) }
        if let clusterKeyFile {
            let text = try String(contentsOfFile: clusterKeyFile, encoding: .utf8)
            configuration.clusterKey = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        } else {
            logger.warning("no --cluster-key-file: using the development cluster key; anyone can join or forge frames")
        }
        return configuration
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
