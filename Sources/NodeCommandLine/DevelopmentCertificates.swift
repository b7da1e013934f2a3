import Crypto
import Foundation
import X509

/// A certificate authority and node certificates for mutual TLS on peer links, for
/// development and tests: `session-node certs --out DIR n1 n2 n3` writes `ca.pem`,
/// `ca-key.pem` and, per node, `NODE.pem` and `NODE-key.pem` (keys readable by the owner
/// only). Each node certificate names the node id (common name and DNS subject alternative
/// name, which the peers check against the id a connection claims), is valid for a year
/// and may serve both ends of a link. A production cluster's authority lives elsewhere.
package enum DevelopmentCertificates {
    /// What was written, by file name.
    package struct Files: Sendable {
        /// The authority peers trust (`--tls-ca`).
        package var authority: String
        /// Each node's certificate (`--tls-cert`) and key (`--tls-key`).
        package var nodes: [String: (certificate: String, key: String)]
    }

    /// Writes an authority and a certificate for each of `nodes` into `directory` (made if
    /// missing). Keys are written with mode 0600.
    package static func write(to directory: String, nodes: [String], validity: TimeInterval = 365 * 86_400) throws -> Files {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let now = Date()
        let authorityKey = P256.Signing.PrivateKey()
        let authorityName = try DistinguishedName { CommonName("swift-session-cluster development CA") }
        let authority = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(authorityKey.publicKey),
            notValidBefore: now - 3_600, notValidAfter: now + validity, issuer: authorityName, subject: authorityName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(authorityKey))
        let authorityPath = (directory as NSString).appendingPathComponent("ca.pem")
        try writeFile(authorityPath, try authority.serializeAsPEM().pemString, private: false)
        try writeFile((directory as NSString).appendingPathComponent("ca-key.pem"), authorityKey.pemRepresentation, private: true)
        var written = Files(authority: authorityPath, nodes: [:])
        for node in nodes {
            let key = P256.Signing.PrivateKey()
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
                notValidBefore: now - 3_600, notValidAfter: now + validity, issuer: authorityName,
                subject: try DistinguishedName { CommonName(node) }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.serverAuth, .clientAuth])
                    SubjectAlternativeNames([.dnsName(node)])
                },
                issuerPrivateKey: .init(authorityKey))
            let certificatePath = (directory as NSString).appendingPathComponent("\(node).pem")
            let keyPath = (directory as NSString).appendingPathComponent("\(node)-key.pem")
            try writeFile(certificatePath, try certificate.serializeAsPEM().pemString, private: false)
            try writeFile(keyPath, key.pemRepresentation, private: true)
            written.nodes[node] = (certificatePath, keyPath)
        }
        return written
    }

    private static func writeFile(_ path: String, _ text: String, private isPrivate: Bool) throws {
        let attributes: [FileAttributeKey: Any] = [.posixPermissions: isPrivate ? 0o600 : 0o644]
        guard FileManager.default.createFile(atPath: path, contents: Data((text + "\n").utf8), attributes: attributes) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
