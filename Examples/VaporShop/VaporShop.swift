import ArgumentParser
import Logging
import NodeCommandLine
import SessionCluster
import SessionClusterVapor
import Vapor

/// A small shop on Vapor with sessions in the cluster: sign in, a cart, a visit counter,
/// log out, log out everywhere. Run three of them behind nginx with `make example-vapor`.
///
/// With `--sessions memory` the same shop keeps its sessions in this one process, on
/// Vapor's in-memory sessions: the baseline of the app-level benchmark.
@main
struct VaporShop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vapor-shop", abstract: "A small Vapor shop with replicated sessions.", subcommands: [Serve.self])

    struct Serve: AsyncParsableCommand {
        @ArgumentParser.OptionGroup var options: ClusterOptions

        @ArgumentParser.Option(help: "Where sessions live: cluster (replicated) or memory (this process only).")
        var sessions: SessionBackend = .cluster

        func run() async throws {
            options.bootstrapLogging()
            var logger = Logger(label: "vapor-shop")
            logger[metadataKey: "node"] = "\(options.id)"
            // Vapor parses its own command line: give it none, and configure it here.
            let app = try await Application.make(Environment(name: "production", arguments: ["vapor-shop"]))
            app.logger = logger
            app.http.server.configuration.hostname = options.httpAddress.host
            app.http.server.configuration.port = options.httpAddress.port
            var cluster: SessionCluster?
            switch sessions {
            case .memory:
                app.sessions.use(.memory)
            case .cluster:
                let node = try SessionCluster(configuration: try options.configuration(logger: logger))
                // Served over plain HTTP here: a Secure cookie would not come back from a browser.
                app.sessions.use(.cluster(node, configuration: .cluster(secure: false)))  // starts and stops with the app
                cluster = node
            }
            routes(app, cluster: cluster)
            do {
                try await app.execute()
            } catch {
                try? await app.asyncShutdown()
                throw error
            }
            try await app.asyncShutdown()
        }
    }

    static func routes(_ app: Application, cluster: SessionCluster?) {
        app.get("health") { _ async -> HTTPStatus in
            guard let cluster else { return .ok }
            return await cluster.isReady() ? .ok : .serviceUnavailable
        }
        // nginx (Examples/run.py) stamps X-Request-Start and gives up on a node after 10 s: a
        // request it gave up on, and may have sent to the next node, writes nothing later.
        let deadline = cluster.map {
            SessionClusterDeadlineMiddleware(budget: .seconds(10), nodeID: $0.configuration.nodeID.rawValue)
        }
        let shop = app.grouped((deadline.map { [$0] } ?? []) + [app.sessions.middleware])
        shop.post("login") { req -> String in
            let user = req.query[String.self, at: "user"] ?? "guest"
            req.session.signIn(user)
            return "signed in as \(user)\n"
        }
        shop.post("cart", ":item") { req -> String in
            var cart = (req.session.data["cart"] ?? "").split(separator: ",").map(String.init)
            cart.append(req.parameters.get("item")!)
            req.session.data["cart"] = cart.joined(separator: ",")
            return cart.joined(separator: ",") + "\n"
        }
        shop.get("cart") { req -> String in
            (req.session.data["cart"] ?? "") + "\n"
        }
        // Reads the session and changes one field: what the app-level benchmark drives.
        shop.post("visit") { req -> String in
            let visits = (req.session.data["visits"].flatMap(Int.init) ?? 0) + 1
            req.session.data["visits"] = "\(visits)"
            return "\(visits)\n"
        }
        shop.post("logout") { req -> HTTPStatus in
            req.session.destroy()
            return .noContent
        }
        guard let cluster else { return }
        shop.get("sessions") { req -> String in
            guard let user = req.session.principal else { throw Abort(.unauthorized) }
            return "\(user) has \(try await cluster.sessions(of: user).count) sessions\n"
        }
        shop.post("logout-everywhere") { req -> HTTPStatus in
            try await req.logOutEverywhere()
            return .noContent
        }
    }
}

enum SessionBackend: String, ExpressibleByArgument {
    case cluster, memory
}
