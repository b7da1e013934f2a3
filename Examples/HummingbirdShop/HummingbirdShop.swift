import ArgumentParser
import Hummingbird
import HummingbirdAuth
import Logging
import NodeCommandLine
import SessionCluster
import SessionClusterHummingbird

/// A small shop on Hummingbird with sessions in the cluster: sign in, a cart, a visit
/// counter, log out, log out everywhere. Run three of them behind nginx with
/// `make example-hummingbird`.
///
/// With `--sessions memory` the same shop keeps its sessions in this one process, on
/// hummingbird-auth's `SessionMiddleware` over `MemoryPersistDriver`: the baseline of the
/// app-level benchmark.
@main
struct HummingbirdShop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hummingbird-shop", abstract: "A small Hummingbird shop with replicated sessions.",
        subcommands: [Serve.self])

    struct Serve: AsyncParsableCommand {
        @OptionGroup var options: ClusterOptions

        @Option(help: "Where sessions live: cluster (replicated) or memory (this process only).")
        var sessions: SessionBackend = .cluster

        func run() async throws {
            options.bootstrapLogging()
            var logger = Logger(label: "hummingbird-shop")
            logger[metadataKey: "node"] = "\(options.id)"
            let address = ApplicationConfiguration(address: .hostname(options.httpAddress.host, port: options.httpAddress.port))
            switch sessions {
            case .memory:
                let app = Application(router: MemoryShop.router(), configuration: address, logger: logger)
                try await app.runService()
            case .cluster:
                let cluster = try SessionCluster(configuration: try options.configuration(logger: logger))
                var app = Application(router: ClusterShop.router(cluster), configuration: address, services: [cluster], logger: logger)
                app.beforeServerStarts { try await cluster.start() }
                try await app.runService()
            }
        }
    }
}

enum SessionBackend: String, ExpressibleByArgument {
    case cluster, memory
}

/// The shop on ``ClusterSessionMiddleware``.
enum ClusterShop {
    static func router(_ cluster: SessionCluster) -> Router<BasicClusterSessionRequestContext> {
        let router = Router(context: BasicClusterSessionRequestContext.self)
        router.get("/health") { _, _ -> HTTPResponse.Status in await cluster.isReady() ? .ok : .serviceUnavailable }
        // nginx (Examples/run.py) stamps X-Request-Start and gives up on a node after 10 s: a
        // request it gave up on, and may have sent to the next node, writes nothing later.
        router.add(
            middleware: RequestDeadlineMiddleware(RequestDeadline(budget: .seconds(10)), nodeID: cluster.configuration.nodeID.rawValue))
        // SESSION_NODE names the node a session was made on, which owns it: a balancer that
        // routes on it sends each session to its owner (Examples/run.py --affinity).
        router.add(
            middleware: ClusterSessionMiddleware(
                cluster: cluster, cookie: SessionCookie(secure: false), affinityCookie: "SESSION_NODE"))
        router.post("/login") { request, context -> String in
            let user = request.uri.queryParameters["user"].map(String.init) ?? "guest"
            context.session.setPrincipal(user)
            context.session.rotateID()  // a new id after sign-in: no session fixation
            return "signed in as \(user)\n"
        }
        router.post("/cart/:item") { _, context -> String in
            var cart = context.session.get("cart", as: [String].self) ?? []
            cart.append(try context.parameters.require("item"))
            try context.session.set("cart", cart)
            return cart.joined(separator: ",") + "\n"
        }
        router.get("/cart") { _, context -> String in
            (context.session.get("cart", as: [String].self) ?? []).joined(separator: ",") + "\n"
        }
        // Reads the session and changes one field: what the app-level benchmark drives.
        router.post("/visit") { _, context -> String in
            let visits = (context.session.get("visits", as: Int.self) ?? 0) + 1
            try context.session.set("visits", visits)
            return "\(visits)\n"
        }
        router.get("/sessions") { _, context -> String in
            guard let user = context.session.principal else { throw HTTPError(.unauthorized) }
            return "\(user) has \(try await cluster.sessions(of: user).count) sessions\n"
        }
        router.post("/logout") { _, context -> HTTPResponse.Status in
            context.session.invalidate()
            return .noContent
        }
        router.post("/logout-everywhere") { _, context -> HTTPResponse.Status in
            context.session.logOutEverywhere()
            return .noContent
        }
        return router
    }
}

/// The same shop on hummingbird-auth's `SessionMiddleware` over `MemoryPersistDriver`.
enum MemoryShop {
    struct ShopSession: Codable, Sendable {
        var user: String?
        var cart: [String] = []
        var visits = 0
    }

    typealias Context = BasicSessionRequestContext<ShopSession, String>

    static func router() -> Router<Context> {
        let router = Router(context: Context.self)
        router.get("/health") { _, _ -> HTTPResponse.Status in .ok }
        router.add(middleware: SessionMiddleware(storage: MemoryPersistDriver()))
        router.post("/login") { request, context -> String in
            let user = request.uri.queryParameters["user"].map(String.init) ?? "guest"
            var session = context.sessions.session ?? ShopSession()
            session.user = user
            context.sessions.createSession(session)
            return "signed in as \(user)\n"
        }
        router.post("/cart/:item") { _, context -> String in
            var session = context.sessions.session ?? ShopSession()
            session.cart.append(try context.parameters.require("item"))
            if context.sessions.session == nil { context.sessions.createSession(session) } else { _ = context.sessions.updateSession(session) }
            return session.cart.joined(separator: ",") + "\n"
        }
        router.get("/cart") { _, context -> String in
            (context.sessions.session?.cart ?? []).joined(separator: ",") + "\n"
        }
        router.post("/visit") { _, context -> String in
            var session = context.sessions.session ?? ShopSession()
            session.visits += 1
            if context.sessions.session == nil { context.sessions.createSession(session) } else { _ = context.sessions.updateSession(session) }
            return "\(session.visits)\n"
        }
        router.post("/logout") { _, context -> HTTPResponse.Status in
            context.sessions.clearSession()
            return .noContent
        }
        return router
    }
}
