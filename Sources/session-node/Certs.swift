import ArgumentParser
import NodeCommandLine

/// `session-node certs`: a development certificate authority and node certificates for
/// mutual TLS on peer links.
struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a development certificate authority and one certificate per node, for --tls-cert/--tls-key/--tls-ca.",
        discussion: """
            Writes DIR/ca.pem and DIR/ca-key.pem, and DIR/NODE.pem and DIR/NODE-key.pem for each NODE (keys mode 0600). \
            Each node certificate names the node id, which peers check against the id a connection claims. \
            For development and tests: a production cluster's authority and keys are kept elsewhere.
            """)

    @Option(help: "The directory to write to (created if missing).")
    var out: String

    @Argument(help: "The node ids, as given to serve --id.")
    var nodes: [String]

    func validate() throws {
        guard !nodes.isEmpty else { throw ValidationError("name at least one node id") }
    }

    func run() throws {
        let files = try DevelopmentCertificates.write(to: out, nodes: nodes)
        print("authority: \(files.authority)")
        for node in nodes {
            guard let pair = files.nodes[node] else { continue }
            print("\(node): --tls-cert \(pair.certificate) --tls-key \(pair.key) --tls-ca \(files.authority)")
        }
    }
}
