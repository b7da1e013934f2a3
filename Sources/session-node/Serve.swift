import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import NodeCommandLine
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
            acknowledges writes only with --replicas 1. A node refuses to start without \
            --cluster-key-file (create one with: head -c 32 /dev/urandom | base64 > cluster.key; \
            chmod 600 cluster.key) unless --insecure-development-key is given.
            """)

    @OptionGroup var options: ClusterOptions

    func run() async throws {
        options.bootstrapLogging()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let id = options.id
        var logger = Logger(label: "session-node")
        logger[metadataKey: "node"] = "\(id)"

        let httpAddress = options.httpAddress
        let configuration = try options.configuration(logger: logger)
        let cluster = try SessionCluster(configuration: configuration, logger: Logger(label: "session-cluster"))

        let router = Router()
        router.add(middleware: NodeHeaderMiddleware(nodeID: id))
        SessionClusterRoutes(cluster: cluster, signInToken: try options.signInToken()).register(on: router)
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

