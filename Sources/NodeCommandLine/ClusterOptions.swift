import ArgumentParser
import Foundation
import Logging
import SessionCluster

/// The command-line options of a process that runs one cluster node: `session-node serve`
/// and the example apps take the same ones.
package struct ClusterOptions: ParsableArguments {
    @Option(help: "This node's id, stable across restarts.")
    package var id: String

    @Option(help: "HOST:PORT of the HTTP API.")
    package var http: String

    @Option(help: "HOST:PORT for peers: TCP and UDP on the same port.")
    package var bind: String

    @Option(name: .customLong("seed"), help: "HOST:PORT of a node to contact at start; repeat for several.")
    package var seeds: [String] = []

    @Option(help: "Copies of each session (owner plus backups).")
    package var replicas: Int = 2

    @Option(help: ArgumentHelp(
        "A file holding the cluster key, readable by its owner only (chmod 600).",
        discussion: """
            Either one key: the whole file, surrounding whitespace ignored, at least 16 bytes (key id 0). \
            Or one key per line as ID:KEY, ID 0 to 7, e.g. `1:<new key>` then `0:<old key>`: frames are \
            sent under the first line's key and accepted under any line's, so a key changes by rolling \
            restarts. KEY is taken as text either way. Create one with: \
            head -c 32 /dev/urandom | base64 > cluster.key; chmod 600 cluster.key
            """))
    package var clusterKeyFile: String?

    @Flag(help: "Run without --cluster-key-file on the public development key: anyone can join the cluster and forge its frames. For local experiments only.")
    package var insecureDevelopmentKey = false

    @Option(help: "Mutual TLS on peer links: this node's certificate (PEM), signed by --tls-ca. Needs --tls-key and --tls-ca; `session-node certs` makes development ones.")
    package var tlsCert: String?

    @Option(help: "The private key (PEM) of --tls-cert, readable by its owner only (chmod 600).")
    package var tlsKey: String?

    @Option(help: "The cluster's certificate authority (PEM): peers must present a certificate it signed.")
    package var tlsCa: String?

    @Option(help: "Seconds a session may stay unused before it expires (the store's default: 1800).")
    package var idleTimeout: Double?

    @Option(help: "A file holding the token a backend presents to sign a session in (PUT /session/principal); without it, signing in over HTTP is refused.")
    package var signInTokenFile: String?

    @Option(help: "The memory budget of the sessions this node holds, in bytes (attributes plus 256 per session, owned and backed up): a create or write past it answers 503 store_full with Retry-After (default: half the machine's memory).")
    package var maxStoreBytes: Int?

    @Option(help: "The most accepted peer connections still awaiting their handshake; at the cap the oldest such connection is closed (default 64). Members' authenticated links do not count.")
    package var maxInboundPeerConnections: Int?

    @Option(help: "Seconds an accepted peer connection may take to deliver its first authenticated frame before it is closed (default 10).")
    package var peerHandshakeTimeout: Double?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    package var logLevel: Logger.Level = .info

    package init() {}

    package func validate() throws {
        guard PeerAddress(http) != nil else { throw ValidationError("--http must be HOST:PORT, got '\(http)'") }
        guard PeerAddress(bind) != nil else { throw ValidationError("--bind must be HOST:PORT, got '\(bind)'") }
        for seed in seeds where PeerAddress(seed) == nil { throw ValidationError("--seed must be HOST:PORT, got '\(seed)'") }
        guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
        if let idleTimeout, !(0.001...31_536_000).contains(idleTimeout) { throw ValidationError("--idle-timeout must be 0.001 s to a year") }
        if let maxStoreBytes, maxStoreBytes < 1 { throw ValidationError("--max-store-bytes must be positive") }
        if let maxInboundPeerConnections, maxInboundPeerConnections < 1 {
            throw ValidationError("--max-inbound-peer-connections must be at least 1")
        }
        if let peerHandshakeTimeout, !(0.001...86_400).contains(peerHandshakeTimeout) {
            throw ValidationError("--peer-handshake-timeout must be 0.001 to 86400 seconds")
        }
        let tlsFiles = [tlsCert, tlsKey, tlsCa].compactMap { $0 }
        guard tlsFiles.isEmpty || tlsFiles.count == 3 else {
            throw ValidationError("mutual TLS needs all of --tls-cert, --tls-key and --tls-ca")
        }
        switch (clusterKeyFile, insecureDevelopmentKey) {
        case (nil, false): throw ValidationError(ClusterKeyFileError.missing.description)
        case (.some, true): throw ValidationError("give either --cluster-key-file or --insecure-development-key, not both")
        default: break
        }
    }

    /// The HTTP address.
    package var httpAddress: PeerAddress { PeerAddress(http)! }

    /// Sends every log line at `--log-level` or above to standard error.
    package func bootstrapLogging() {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// The sign-in token from `--sign-in-token-file`, if given.
    package func signInToken() throws -> String? {
        guard let signInTokenFile else { return nil }
        return try String(contentsOfFile: signInTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The node's configuration, its keys from `--cluster-key-file` (see
    /// ``ClusterKeyFile/load(from:)``). With `--insecure-development-key` instead, the
    /// development key is used and a warning logged.
    ///
    /// - Throws: ``ClusterKeyFileError`` when the key file is missing, unreadable, readable
    ///   or writable by others than its owner, or holds no valid key list.
    package func configuration(logger: Logger) throws -> SessionClusterConfiguration {
        var configuration = SessionClusterConfiguration(
            nodeID: NodeID(id), bindAddress: PeerAddress(bind)!, seeds: seeds.compactMap(PeerAddress.init),
            clusterKey: SessionClusterConfiguration.developmentClusterKey)
        configuration.replicationFactor = replicas
        if let idleTimeout { configuration.store.defaultMaxInactive = .milliseconds(Int64(idleTimeout * 1000)) }
        if let maxStoreBytes { configuration.limits.maxStoreBytes = maxStoreBytes }
        if let maxInboundPeerConnections { configuration.maxInboundPeerConnections = maxInboundPeerConnections }
        if let peerHandshakeTimeout { configuration.peerHandshakeTimeout = .milliseconds(Int64(peerHandshakeTimeout * 1000)) }
        if let tlsCert, let tlsKey, let tlsCa {
            try ClusterKeyFile.checkPrivate(tlsKey)
            configuration.peerTLS = PeerTLSConfiguration(certificateChainFile: tlsCert, privateKeyFile: tlsKey, trustRootsFile: tlsCa)
        }
        if let clusterKeyFile {
            configuration.clusterKeys = try ClusterKeyFile.load(from: clusterKeyFile)
        } else if insecureDevelopmentKey {
            logger.warning(
                "--insecure-development-key: using the public development cluster key; anyone can join this cluster and forge its frames")
        } else {
            throw ClusterKeyFileError.missing
        }
        return configuration
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
