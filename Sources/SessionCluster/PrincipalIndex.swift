import Crypto
import SessionCore

/// The cluster-wide index of each principal's sessions: `sessions(of:)`, "log out
/// everywhere" and the per-principal session limit.
///
/// The index of a principal is itself a session, an *index record*, so it is partitioned,
/// owned, replicated and failed over exactly like sessions, with the same write concern: one
/// attribute per session of the principal (its id, with its creation time as the value).
/// Attributes merge one by one, so concurrent sign-ins of one user both land.
///
/// The record's id is an HMAC of the principal under the cluster key: no client can compute
/// it, and ``SessionCluster/load(_:touch:)`` never returns a record.
///
/// The index is a superset of the principal's live sessions: a session is added to it
/// *before* the session is created or signed in, and entries of ended sessions are pruned
/// when the index is read. So "log out everywhere" can miss no session whose sign-in was
/// acknowledged.
struct PrincipalIndex: Sendable {
    /// The principal of every index record.
    static let recordPrincipal = SessionMetadata.indexRecordPrincipal

    private let key: [UInt8]

    init(clusterKey: [UInt8]) {
        self.key = Array("principal-index".utf8) + clusterKey
    }

    /// How long an entry whose session is not found yet is kept: the entry is written just
    /// before its session's create, which succeeds or fails well within this.
    static let pendingGraceMilliseconds: Int64 = 10_000

    /// The id of `principal`'s index record.
    func recordID(of principal: String) -> SessionID {
        let mac = HMAC<SHA256>.authenticationCode(for: Array(principal.utf8), using: SymmetricKey(data: key))
        return SessionID(bytes: Array(mac).prefix(SessionID.byteCount))!
    }

    /// The entry of session `id` created at `createdAt`.
    static func entry(_ id: SessionID, createdAt: Timestamp) -> (String, AttributeValue) {
        var bytes = [UInt8]()
        withUnsafeBytes(of: createdAt.milliseconds.bigEndian) { bytes.append(contentsOf: $0) }
        return (id.text, AttributeValue(encoding: .raw, bytes: bytes))
    }

    /// The sessions a record lists, oldest first (by creation time, then id).
    static func entries(of record: Session) -> [(id: SessionID, createdAt: Int64)] {
        record.attributes.compactMap { name, value -> (id: SessionID, createdAt: Int64)? in
            guard let id = try? SessionID(name), value.bytes.count == 8 else { return nil }
            let createdAt = value.bytes.reduce(Int64(0)) { $0 << 8 | Int64($1) }
            return (id, createdAt)
        }.sorted { ($0.createdAt, $0.id.text) < ($1.createdAt, $1.id.text) }
    }
}

extension Session {
    /// True for a principal index record, which applications never see.
    var isPrincipalIndex: Bool { principal == PrincipalIndex.recordPrincipal }
}
