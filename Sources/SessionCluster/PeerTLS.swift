import NIOCore
import NIOSSL
import X509

/// Mutual TLS on the peer links: every node presents a certificate signed by the cluster's
/// certificate authority and accepts only peers that do, and a connection's handshake must
/// name a node its certificate names (a subject alternative name, or the common name). With
/// it, session ids and values no longer cross the peer network in clear, and a node id
/// cannot be claimed without its certificate's key. Heartbeats stay UDP, authenticated
/// with the cluster key.
///
/// `session-node certs --out DIR n1 n2 n3` writes a development authority and one
/// certificate per node (see the README).
public struct PeerTLSConfiguration: Sendable, Hashable {
    /// A PEM file with this node's certificate (and any intermediates).
    public var certificateChainFile: String
    /// A PEM file with the certificate's private key.
    public var privateKeyFile: String
    /// A PEM file with the cluster's certificate authority: peers must chain to it.
    public var trustRootsFile: String

    /// Mutual TLS with this node's certificate and key, trusting peers signed by `trustRootsFile`.
    public init(certificateChainFile: String, privateKeyFile: String, trustRootsFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.trustRootsFile = trustRootsFile
    }
}

/// The two TLS contexts of a node's peer links, made once when the cluster is made, so a
/// missing or unreadable file is a configuration error at start-up, not a failed link.
struct PeerTLSContexts: Sendable {
    let server: NIOSSLContext
    let client: NIOSSLContext

    init(_ configuration: PeerTLSConfiguration) throws(SessionClusterError) {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(configuration.certificateChainFile).map { NIOSSLCertificateSource.certificate($0) }
            let key = NIOSSLPrivateKeySource.privateKey(try NIOSSLPrivateKey(file: configuration.privateKeyFile, format: .pem))
            var server = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
            var client = TLSConfiguration.makeClientConfiguration()
            client.certificateChain = chain
            client.privateKey = key
            server.trustRoots = .file(configuration.trustRootsFile)
            client.trustRoots = .file(configuration.trustRootsFile)
            // Peers are reached by address and named by id, not by host name: the chain to
            // the cluster's authority is checked, and the id against the certificate after.
            server.certificateVerification = .noHostnameVerification
            client.certificateVerification = .noHostnameVerification
            server.minimumTLSVersion = .tlsv13
            client.minimumTLSVersion = .tlsv13
            self.server = try NIOSSLContext(configuration: server)
            self.client = try NIOSSLContext(configuration: client)
        } catch {
            throw .invalidConfiguration("peer TLS: \(error)")
        }
    }

    /// The names a peer's certificate gives it: its DNS subject alternative names and its
    /// common name. Empty when the connection has no verified peer certificate.
    static func peerNames(on pipeline: ChannelPipeline.SynchronousOperations) -> Set<String> {
        guard let peer = try? pipeline.nioSSL_peerCertificate(), let der = try? peer.toDERBytes(),
            let certificate = try? Certificate(derEncoded: der)
        else { return [] }
        var names = Set<String>()
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for case .dnsName(let name) in alternatives { names.insert(name) }
        }
        for relative in certificate.subject {
            for attribute in relative where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { names.insert(name) }
            }
        }
        return names
    }
}
