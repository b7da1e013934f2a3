import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NodeCommandLine
import Prometheus
import SessionCluster
import SessionClusterHummingbird
import ServiceLifecycle

/// `session-node serve`: one node, its HTTP API on `--http`, its peer port on `--bind`, and
/// with `--admin` its operators' routes on a listener of their own.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one node: the session HTTP API over an embedded, replicated store.",
        discussion: """
            Start every node of a cluster with the same --seed list (it may include the node's own \
            --bind address). Writes are acknowledged once a backup holds them, so a node alone \
            acknowledges writes only with --replicas 1. A node refuses to start without \
            --cluster-key-file (create one with: head -c 32 /dev/urandom | base64 > cluster.key; \
            chmod 600 cluster.key) unless --insecure-development-key is given. GET /cluster and \
            GET /metrics are served on --admin; without --admin they stay on --http, with a warning.
            """)

    @OptionGroup var options: ClusterOptions

    @Option(help: "HOST:PORT of the operators' listener: GET /cluster and GET /metrics, which --http then no longer serves. Bind it where only operators reach it (e.g. 127.0.0.1).")
    var admin: String?

    @Flag(inversion: .prefixedNo, help: "Whether the SESSION_ID cookie carries Secure (sent back over HTTPS only); --no-secure-cookie for plain HTTP in development. It is HttpOnly and SameSite=Lax either way.")
    var secureCookie = true

    @Option(help: "Seconds a connection to --http may stay idle (no request in progress) before the node closes it.")
    var httpIdleTimeout: Double = 60

    @Option(help: "Seconds a request may take to arrive whole, from its head to the end of its body, before the node closes the connection (a slow POST would otherwise hold it as long as it keeps sending a byte now and then).")
    var httpRequestTimeout: Double = 30

    @Option(help: "Sessions one client may create per second (POST /session), with bursts of as many; over it, 429 with Retry-After. The client is the TCP peer's address, or with --trust-forwarded-for the first X-Forwarded-For address. At most 10,000 clients are remembered (least recently seen forgotten first). Default: no limit.")
    var maxCreatesPerClient: Double?

    @Flag(help: "Take the client of --max-creates-per-client from the first X-Forwarded-For address: only behind a proxy that sets the header itself (nginx: proxy_set_header X-Forwarded-For $remote_addr), since clients can write anything into it.")
    var trustForwardedFor = false

    @Option(help: "Seconds after the arrival time the load balancer writes into X-Request-Start (nginx: proxy_set_header X-Request-Start \"t=${msec}\") that a request may still write: past it, the session's owner refuses the request's writes unapplied (503 deadline_exceeded) wherever they were held up, so a request the balancer gave up on and sent to another node cannot land later over newer writes; reads are served. Set it to the balancer's upstream timeout (proxy_read_timeout) less the clock offset between hosts. Requests without the header have no deadline. Default: none.")
    var requestDeadline: Double?

    func validate() throws {
        if let maxCreatesPerClient, !(maxCreatesPerClient > 0 && maxCreatesPerClient.isFinite) {
            throw ValidationError("--max-creates-per-client must be positive")
        }
        if trustForwardedFor, maxCreatesPerClient == nil {
            throw ValidationError("--trust-forwarded-for only matters with --max-creates-per-client")
        }
        if let admin, PeerAddress(admin) == nil { throw ValidationError("--admin must be HOST:PORT, got '\(admin)'") }
        // A day at most: the nanoseconds must fit an Int64.
        guard (0.001...86_400).contains(httpIdleTimeout) else { throw ValidationError("--http-idle-timeout must be 0.001 to 86400 seconds") }
        guard (0.001...86_400).contains(httpRequestTimeout) else {
            throw ValidationError("--http-request-timeout must be 0.001 to 86400 seconds")
        }
        if let requestDeadline, !(0.001...86_400).contains(requestDeadline) {
            throw ValidationError("--request-deadline must be 0.001 to 86400 seconds")
        }
    }

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
        let creationLimit = maxCreatesPerClient.map {
            SessionCreationLimit(
                limiter: ClientRateLimiter(ratePerSecond: $0), trustForwardedFor: trustForwardedFor, nodeID: id)
        }
        let routes = SessionClusterRoutes<ClientAddressRequestContext>(
            cluster: cluster, signInToken: try options.signInToken(), secureCookie: secureCookie,
            creationLimit: creationLimit)

        let router = Router(context: ClientAddressRequestContext.self)
        router.add(middleware: NodeHeaderMiddleware(nodeID: id))
        if let requestDeadline {
            let budget = Duration.nanoseconds(Int64(requestDeadline * 1_000_000_000))
            router.add(middleware: RequestDeadlineMiddleware(RequestDeadline(budget: budget), nodeID: id))
        }
        routes.registerSessionRoutes(on: router)
        let adminAddress = admin.flatMap(PeerAddress.init)
        let adminRouter = adminAddress == nil ? router : Router(context: ClientAddressRequestContext.self)
        if adminAddress != nil { adminRouter.add(middleware: NodeHeaderMiddleware(nodeID: id)) }
        routes.registerAdminRoutes(on: adminRouter)
        adminRouter.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        var services: [any Service] = [cluster]
        if let adminAddress {
            services.append(
                Application(
                    router: adminRouter,
                    configuration: ApplicationConfiguration(
                        address: .hostname(adminAddress.host, port: adminAddress.port), serverName: nil),
                    logger: logger))
        } else {
            logger.warning(
                "no --admin: GET /cluster and GET /metrics are served on the public --http listener; give --admin HOST:PORT to serve them apart")
        }
        let requestTimeout = TimeAmount.nanoseconds(Int64(httpRequestTimeout * 1_000_000_000))
        let slowRequestsClosed = Counter(label: "session_cluster_http_slow_requests_closed_total", dimensions: [("node", id)])
        var app = Application(
            router: router,
            server: .http1(
                configuration: .init(
                    additionalChannelHandlers: [RequestReadDeadline(timeout: requestTimeout, closed: slowRequestsClosed)],
                    idleTimeout: .nanoseconds(Int64(httpIdleTimeout * 1_000_000_000)))),
            configuration: ApplicationConfiguration(address: .hostname(httpAddress.host, port: httpAddress.port), serverName: nil),
            services: services,
            logger: logger)
        // Peers' ports are bound before the HTTP port accepts requests.
        app.beforeServerStarts { try await cluster.start() }
        try await app.runService()
    }
}
