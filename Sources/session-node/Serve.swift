import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import SessionCluster
import SessionClusterHummingbird

/// `session-node serve`: one node, its HTTP API on `--http`, its peer port on `--bind`.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one node: the session HTTP API over an embedded, replicated store.",
        discussion: """
            Start every node of a cluster with the same --seed list (it may include the node's own \
            --bind address). Writes are acknowledged once a backup holds them, so a node alone \
            acknowledges writes only with --replicas 1. Without --cluster-key-file a development key \
            is used and a warning logged.
            """)

    @Option(help: "This node's id, stable across restarts.")
    var id: String

    @Option(help: "HOST:PORT of the HTTP API.")
    var http: String

    @Option(help: "HOST:PORT for peers: TCP and UDP on the same port.")
    var bind: String

    @Option(name: .customLong("seed"), help: "HOST:PORT of a node to contact at start; repeat for several.")
    var seeds: [String] = []

    @Option(help: "Copies of each session (owner plus backups).")
    var replicas: Int = 2

    @Option(help: "A file holding the cluster key (at least 16 bytes; surrounding whitespace ignored).")
    var clusterKeyFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard PeerAddress(http) != nil else { throw ValidationError("--http must be HOST:PORT, got '\(http)'") }
        guard PeerAddress(bind) != nil else { throw ValidationError("--bind must be HOST:PORT, got '\(bind)'") }
        for seed in seeds where PeerAddress(seed) == nil { throw ValidationError("--seed must be HOST:PORT, got '\(seed)'") }
        guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: "session-node")
        logger[metadataKey: "node"] = "\(id)"

        let httpAddress = PeerAddress(http)!
        var configuration = SessionClusterConfiguration(
            nodeID: NodeID(id), bindAddress: PeerAddress(bind)!, seeds: seeds.compactMap(PeerAddress.init),
            clusterKey: SessionClusterConfiguration.developmentClusterKey)
        configuration.replicationFactor = replicas
        if let clusterKeyFile {
            let text = try String(contentsOfFile: clusterKeyFile, encoding: .utf8)
            configuration.clusterKey = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        } else {
            logger.warning("no --cluster-key-file: using the development cluster key; anyone can join or forge frames")
        }
        let cluster = try SessionCluster(configuration: configuration, logger: Logger(label: "session-cluster"))

        let router = Router()
        router.add(middleware: NodeHeaderMiddleware(nodeID: id))
        SessionClusterRoutes(cluster: cluster).register(on: router)
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        var app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(httpAddress.host, port: httpAddress.port), serverName: nil),
            services: [cluster],
            logger: logger)
        // Peers' ports are bound before the HTTP port accepts requests.
        app.beforeServerStarts { try await cluster.start() }
        try await app.runService()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
