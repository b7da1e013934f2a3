import Foundation
import SessionCluster

/// Reads `--cluster-key-file`.
///
/// Two formats:
///
/// - One key: the whole file, surrounding whitespace trimmed, is the key (id 0).
/// - Several keys, one per line as `ID:KEY` with ID 0 to 7, e.g.
///   ```
///   1:9f2c...new key...
///   0:4b7a...old key...
///   ```
///   Frames are sent under the first line's key and accepted under any line's. Empty lines
///   are ignored; a file whose first non-empty line starts with digits and a colon is
///   read in this format.
///
/// KEY is taken as text in both formats (its UTF-8 bytes, at least 16), so a key keeps its
/// meaning when it moves from a one-key file to a list. The file must be readable and
/// writable by its owner only (`chmod 600`).
package enum ClusterKeyFile {
    /// The keys in the file at `path`, the sending key first.
    ///
    /// - Throws: ``ClusterKeyFileError``.
    package static func load(from path: String) throws(ClusterKeyFileError) -> [ClusterKey] {
        try checkPrivate(path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "cannot read it")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .unreadable(path: path, reason: "not UTF-8 text") }
        return try parse(text, path: path)
    }

    /// Refuses a secret's file (a cluster key, a TLS private key) that its group or others
    /// may read or write.
    package static func checkPrivate(_ path: String) throws(ClusterKeyFileError) {
        var status = stat()
        guard stat(path, &status) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        let mode = UInt32(status.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw .permissions(path: path, mode: mode) }
    }

    /// The keys in `text`, a key file's contents; `path` names the file in errors.
    ///
    /// - Throws: ``ClusterKeyFileError``, except for file access.
    package static func parse(_ text: String, path: String) throws(ClusterKeyFileError) -> [ClusterKey] {
        let lines = text.split(whereSeparator: \.isNewline).enumerated()
            .map { (number: $0.offset + 1, text: $0.element.trimmingCharacters(in: .whitespaces)) }
            .filter { !$0.text.isEmpty }
        guard let first = lines.first else { throw .empty(path: path) }
        guard idPrefix(of: first.text) != nil else {
            let key = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
            try check(key, id: 0, path: path)
            return [ClusterKey(id: 0, bytes: key)]
        }
        var keys: [ClusterKey] = []
        for line in lines {
            guard let (idText, keyText) = idPrefix(of: line.text) else {
                throw .badLine(path: path, line: line.number, reason: "not ID:KEY")
            }
            guard let id = UInt8(idText), ClusterKey.ids.contains(id) else {
                throw .badLine(path: path, line: line.number, reason: "key id \(idText) is outside 0...7")
            }
            guard !keys.contains(where: { $0.id == id }) else {
                throw .badLine(path: path, line: line.number, reason: "key id \(id) appears twice")
            }
            let key = Array(keyText.trimmingCharacters(in: .whitespaces).utf8)
            try check(key, id: id, path: path)
            keys.append(ClusterKey(id: id, bytes: key))
        }
        return keys
    }

    /// The shortest key accepted, in bytes.
    static let minimumKeyBytes = 16

    /// `ID` and `KEY` of a line `ID:KEY` whose ID is digits; nil for any other line.
    private static func idPrefix(of line: String) -> (Substring, Substring)? {
        guard let colon = line.firstIndex(of: ":") else { return nil }
        let id = line[..<colon]
        guard !id.isEmpty, id.allSatisfy(\.isASCII), id.allSatisfy(\.isNumber) else { return nil }
        return (id, line[line.index(after: colon)...])
    }

    private static func check(_ key: [UInt8], id: UInt8, path: String) throws(ClusterKeyFileError) {
        guard key.count >= minimumKeyBytes else { throw .tooShort(path: path, id: id, bytes: key.count, minimum: minimumKeyBytes) }
    }
}

/// Why the cluster key could not be read: each description says what to do.
package enum ClusterKeyFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Neither `--cluster-key-file` nor `--insecure-development-key` was given.
    case missing
    /// The file cannot be read; `reason` says why.
    case unreadable(path: String, reason: String)
    /// The file's permission bits (`mode`) let its group or others read or write it.
    case permissions(path: String, mode: UInt32)
    /// The file holds nothing but whitespace.
    case empty(path: String)
    /// A line of an `ID:KEY` file is wrong; `line` counts from 1.
    case badLine(path: String, line: Int, reason: String)
    /// The key with id `id` has `bytes` bytes, fewer than `minimum`.
    case tooShort(path: String, id: UInt8, bytes: Int, minimum: Int)

    /// The error and its fix, in one message.
    package var description: String {
        let create = "head -c 32 /dev/urandom | base64 > cluster.key; chmod 600 cluster.key"
        switch self {
        case .missing:
            return "no cluster key: give --cluster-key-file with the key every node shares (create one with: \(create)), "
                + "or --insecure-development-key for a local experiment (anyone can then join and forge frames)"
        case .unreadable(let path, let reason):
            return "cannot read the cluster key file \(path): \(reason)"
        case .permissions(let path, let mode):
            return "the key file \(path) has mode \(String(mode, radix: 8)): its group or others can read or "
                + "write it; make it private to its owner with: chmod 600 \(path)"
        case .empty(let path):
            return "the cluster key file \(path) is empty; create a key with: \(create)"
        case .badLine(let path, let line, let reason):
            return "the cluster key file \(path), line \(line): \(reason) (the format is one key, or lines ID:KEY with ID 0 to 7)"
        case .tooShort(let path, let id, let bytes, let minimum):
            return "the cluster key file \(path): key id \(id) has \(bytes) bytes, fewer than \(minimum); create a key with: \(create)"
        }
    }
}
