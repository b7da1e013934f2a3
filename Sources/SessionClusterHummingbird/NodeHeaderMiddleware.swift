import Hummingbird
import Logging

/// Adds `X-Node: <id>` to every response, errors included, so a client behind a load
/// balancer can tell which node answered. Errors that are not HTTP errors become a 500
/// with a JSON body (and are logged), rather than losing the header.
public struct NodeHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The header's name.
    public static var headerName: String { "X-Node" }

    /// The node id written in the header.
    public let nodeID: String

    /// Creates the middleware for node `nodeID`.
    public init(nodeID: String) {
        self.nodeID = nodeID
    }

    /// Runs the rest of the chain and adds the header to whatever it answers.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            response = try SessionAPIError(status: .internalServerError, code: "internal", message: "internal error")
                .response(from: request, context: context)
        }
        response.headers[.init(Self.headerName)!] = nodeID
        return response
    }
}
