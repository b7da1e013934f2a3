#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A session's attributes packed into one contiguous buffer: for each attribute its name,
/// encoding, version stamp, a dirty flag and its value.
///
/// Why: a 1 KB session of 12 attributes held as dictionaries of names to values and stamps,
/// with a heap buffer per value, costs about 3 KB; packed it is one allocation a little
/// larger than its names and values. A ``Session`` snapshot shares the buffer
/// copy-on-write, so a read is still one retain.
///
/// Record layout: LEB128 name length, LEB128 value length, encoding (1 byte), flags
/// (1 byte, bit 0: dirty), stamp (8 bytes little-endian), name bytes, value bytes.
/// Lookups scan the records: sessions hold a handful of attributes, and a scan of one
/// cache-friendly buffer beats hashing for that size.
struct PackedAttributes: Sendable {
    private(set) var bytes: [UInt8] = []
    /// The number of attributes.
    private(set) var count = 0
    /// Names plus values, in bytes: what the session-size limit counts.
    private(set) var payloadByteCount = 0

    init() {}

    init(reservingCapacity byteCount: Int) {
        bytes.reserveCapacity(byteCount)
    }

    /// Appends a record as it is (not dirty), without looking for an earlier one of the same
    /// name: for building a delta's values in place; see ``hasDuplicateNames``.
    mutating func append(name: UnsafeRawBufferPointer, stamp: SessionVersion, encoding: AttributeEncoding, value: UnsafeRawBufferPointer) {
        var header: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let headerCount = withUnsafeMutableBytes(of: &header) { raw in
            let out = raw.bindMemory(to: UInt8.self)
            var cursor = 0
            Self.writeLength(name.count, into: out, at: &cursor)
            Self.writeLength(value.count, into: out, at: &cursor)
            out[cursor] = encoding.rawValue
            out[cursor + 1] = 0
            UnsafeMutableRawBufferPointer(out).storeBytes(of: stamp.rawValue.littleEndian, toByteOffset: cursor + 2, as: UInt64.self)
            return cursor + 10
        }
        withUnsafeBytes(of: &header) { bytes.append(contentsOf: $0[0..<headerCount]) }
        bytes.append(contentsOf: name)
        bytes.append(contentsOf: value)
        count += 1
        payloadByteCount += name.count + value.count
    }

    /// True when two records share a name (only a malformed delta has that).
    var hasDuplicateNames: Bool {
        guard count > 32 else {
            // Pairwise for the usual handful, names located once on the stack: no allocation.
            return bytes.withUnsafeBufferPointer { buffer in
                withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: count) { names in
                    var offset = 0
                    var found = 0
                    while offset < buffer.count {
                        let record = Record(at: offset, in: buffer)
                        let name = record.nameStart..<record.valueStart
                        for earlier in names[0..<found] where earlier.count == name.count {
                            if buffer[earlier].elementsEqual(buffer[name]) { return true }
                        }
                        names[found] = name
                        found += 1
                        offset = record.end
                    }
                    return false
                }
            }
        }
        var names = Set<String>(minimumCapacity: count)
        var duplicate = false
        forEach { record, buffer in duplicate = !names.insert(record.name(in: buffer)).inserted || duplicate }
        return duplicate
    }

    /// The attributes of `dictionary`, all with `stamp`, none dirty.
    init(_ dictionary: [String: AttributeValue], stamp: SessionVersion) {
        apply(dictionary.map { AttributeWrite(name: $0.key, value: $0.value, stamp: stamp, dirty: false) })
    }

    /// Where one attribute sits in ``bytes``.
    struct Record {
        let start: Int
        /// Offset of the encoding byte; the flags, stamp, name and value follow it.
        let header: Int
        let nameCount: Int
        let valueCount: Int

        var nameStart: Int { header + 10 }
        var valueStart: Int { nameStart + nameCount }
        var end: Int { valueStart + valueCount }
        var byteCount: Int { end - start }

        init(at start: Int, in buffer: UnsafeBufferPointer<UInt8>) {
            var offset = start
            self.start = start
            nameCount = PackedAttributes.readLength(buffer, &offset)
            valueCount = PackedAttributes.readLength(buffer, &offset)
            header = offset
        }

        func encoding(in buffer: UnsafeBufferPointer<UInt8>) -> AttributeEncoding {
            AttributeEncoding(rawValue: buffer[header])
        }
        func isDirty(in buffer: UnsafeBufferPointer<UInt8>) -> Bool { buffer[header + 1] & 1 != 0 }
        func stamp(in buffer: UnsafeBufferPointer<UInt8>) -> SessionVersion {
            SessionVersion(
                rawValue: UInt64(littleEndian: UnsafeRawBufferPointer(buffer).loadUnaligned(fromByteOffset: header + 2, as: UInt64.self)))
        }
        func name(in buffer: UnsafeBufferPointer<UInt8>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: buffer[nameStart..<valueStart]), as: UTF8.self)
        }
        func value(in buffer: UnsafeBufferPointer<UInt8>) -> AttributeValue {
            AttributeValue(encoding: encoding(in: buffer), bytes: Array(buffer[valueStart..<end]))
        }
        func hasName(_ name: String, in buffer: UnsafeBufferPointer<UInt8>) -> Bool {
            var name = name
            return name.withUTF8 { hasName(utf8: $0, in: buffer) }
        }
        /// Whether the record's name is exactly these UTF-8 bytes: one memcmp.
        func hasName(utf8 wanted: UnsafeBufferPointer<UInt8>, in buffer: UnsafeBufferPointer<UInt8>) -> Bool {
            nameCount == wanted.count
                && (wanted.isEmpty || memcmp(wanted.baseAddress!, buffer.baseAddress! + nameStart, wanted.count) == 0)
        }
        func holds(_ value: AttributeValue, in buffer: UnsafeBufferPointer<UInt8>) -> Bool {
            guard value.encoding == encoding(in: buffer), value.bytes.count == valueCount else { return false }
            guard valueCount > 0 else { return true }
            return value.bytes.withUnsafeBufferPointer { memcmp($0.baseAddress!, buffer.baseAddress! + valueStart, valueCount) == 0 }
        }
    }

    /// Calls `body` with each record, in storage order.
    func forEach(_ body: (Record, UnsafeBufferPointer<UInt8>) throws -> Void) rethrows {
        try bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let record = Record(at: offset, in: buffer)
                try body(record, buffer)
                offset = record.end
            }
        }
    }

    /// Runs `body` on the record of `name`, or returns nil when there is none.
    func withRecord<Result>(_ name: String, _ body: (Record, UnsafeBufferPointer<UInt8>) -> Result) -> Result? {
        guard count > 0 else { return nil }
        // The name's UTF-8 is fetched once for the whole walk, not once per record.
        var name = name
        return name.withUTF8 { wanted in
            bytes.withUnsafeBufferPointer { buffer in
                var offset = 0
                while offset < buffer.count {
                    let record = Record(at: offset, in: buffer)
                    if record.hasName(utf8: wanted, in: buffer) { return body(record, buffer) }
                    offset = record.end
                }
                return nil
            }
        }
    }

    func value(of name: String) -> AttributeValue? { withRecord(name) { $0.value(in: $1) } }
    func contains(_ name: String) -> Bool { withRecord(name) { _, _ in true } ?? false }
    func stamp(of name: String) -> SessionVersion? { withRecord(name) { $0.stamp(in: $1) } }
    /// The name and value bytes `name` takes, or nil when it is not stored.
    func payloadByteCount(of name: String) -> Int? { withRecord(name) { record, _ in record.nameCount + record.valueCount } }
    /// True when `name` is stored with exactly `value`.
    func holds(_ name: String, _ value: AttributeValue) -> Bool { withRecord(name) { $0.holds(value, in: $1) } ?? false }

    /// Every attribute as a dictionary (the public, compatible view of a session).
    func dictionary() -> [String: AttributeValue] {
        var result = [String: AttributeValue](minimumCapacity: count)
        forEach { record, buffer in result[record.name(in: buffer)] = record.value(in: buffer) }
        return result
    }

    /// Clears every dirty flag; writes nothing when none is set.
    mutating func clearDirty() {
        guard containsDirty else { return }
        bytes.withUnsafeMutableBufferPointer { buffer in
            let records = UnsafeBufferPointer(buffer)
            var offset = 0
            while offset < records.count {
                let record = Record(at: offset, in: records)
                buffer[record.header + 1] &= ~1
                offset = record.end
            }
        }
    }

    /// True when some attribute is dirty.
    var containsDirty: Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let record = Record(at: offset, in: buffer)
                if record.isDirty(in: buffer) { return true }
                offset = record.end
            }
            return false
        }
    }

    /// Applies `writes` in one pass and one allocation: a write with a value replaces or adds
    /// its attribute, one without removes it. On duplicate names the later write wins. A
    /// replaced attribute that was dirty stays dirty (it has not been sent yet).
    ///
    /// Returns the names whose removal dropped a dirty attribute, so the caller can keep the
    /// removal dirty in turn.
    @discardableResult
    mutating func apply(_ writes: [AttributeWrite]) -> [String] {
        guard !writes.isEmpty else { return [] }
        let writes = Self.laterWins(writes)
        if writes.count == 1, overwriteInPlace(writes[0]) { return [] }

        // Which write (if any) replaces each stored record.
        var replacing = [Int?]()
        var written = [Bool](repeating: false, count: writes.count)
        var removedDirty = [String]()
        var newByteCount = 0
        let index: [String: Int]? = count * writes.count > 4096
            ? Dictionary(writes.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { $1 }) : nil
        forEach { record, buffer in
            let match: Int?
            if let index {
                match = index[record.name(in: buffer)]
            } else {
                match = writes.firstIndex { record.hasName($0.name, in: buffer) }
            }
            replacing.append(match)
            if let match {
                written[match] = true
                if writes[match].value == nil, record.isDirty(in: buffer) { removedDirty.append(writes[match].name) }
                if let value = writes[match].value {
                    newByteCount += Self.recordByteCount(nameCount: writes[match].name.utf8.count, valueCount: value.bytes.count)
                }
            } else {
                newByteCount += record.byteCount
            }
        }
        for (position, write) in writes.enumerated() where !written[position] {
            guard let value = write.value else { continue }
            newByteCount += Self.recordByteCount(nameCount: write.name.utf8.count, valueCount: value.bytes.count)
        }

        var newCount = 0
        var newPayload = 0
        let rebuilt = bytes.withUnsafeBufferPointer { old in
            [UInt8](unsafeUninitializedCapacity: newByteCount) { out, initialized in
                var cursor = 0
                func emit(_ write: AttributeWrite, _ value: AttributeValue, dirty: Bool) {
                    Self.writeRecord(write.name, value, stamp: write.stamp, dirty: dirty, into: out, at: &cursor)
                    newCount += 1
                    newPayload += write.name.utf8.count + value.bytes.count
                }
                var offset = 0
                var position = 0
                while offset < old.count {
                    let record = Record(at: offset, in: old)
                    if let match = replacing[position] {
                        if let value = writes[match].value {
                            emit(writes[match], value, dirty: writes[match].dirty || record.isDirty(in: old))
                        }
                    } else {
                        _ = UnsafeMutableBufferPointer(rebasing: out[cursor..<cursor + record.byteCount])
                            .initialize(fromContentsOf: UnsafeBufferPointer(rebasing: old[record.start..<record.end]))
                        cursor += record.byteCount
                        newCount += 1
                        newPayload += record.nameCount + record.valueCount
                    }
                    offset = record.end
                    position += 1
                }
                for (position, write) in writes.enumerated() where !written[position] {
                    if let value = write.value { emit(write, value, dirty: write.dirty) }
                }
                initialized = cursor
            }
        }
        bytes = rebuilt
        count = newCount
        payloadByteCount = newPayload
        return removedDirty
    }

    /// A value of the same length overwrites its record where it is: the common update of a
    /// counter, a token or a timestamp costs no allocation.
    private mutating func overwriteInPlace(_ write: AttributeWrite) -> Bool {
        guard let value = write.value,
            let record = withRecord(write.name, { record, _ in record }), record.valueCount == value.bytes.count
        else { return false }
        bytes.withUnsafeMutableBufferPointer { buffer in
            buffer[record.header] = value.encoding.rawValue
            if write.dirty { buffer[record.header + 1] |= 1 }
            UnsafeMutableRawBufferPointer(buffer).storeBytes(
                of: write.stamp.rawValue.littleEndian, toByteOffset: record.header + 2, as: UInt64.self)
            _ = UnsafeMutableBufferPointer(rebasing: buffer[record.valueStart..<record.end]).update(fromContentsOf: value.bytes)
        }
        return true
    }

    /// `writes` without the earlier of two writes to one name.
    private static func laterWins(_ writes: [AttributeWrite]) -> [AttributeWrite] {
        guard writes.count > 1 else { return writes }
        // Pairwise for the usual handful (no allocation), a set beyond.
        let hasDuplicates = writes.count <= 16
            ? writes.indices.contains { i in writes[(i + 1)...].contains { $0.name == writes[i].name } }
            : Set(writes.map(\.name)).count < writes.count
        guard hasDuplicates else { return writes }
        var seen = Set<String>()
        var kept = [AttributeWrite]()
        for write in writes.reversed() where seen.insert(write.name).inserted { kept.append(write) }
        return kept.reversed()
    }

    static func recordByteCount(nameCount: Int, valueCount: Int) -> Int {
        lengthByteCount(nameCount) + lengthByteCount(valueCount) + 10 + nameCount + valueCount
    }

    private static func writeRecord(
        _ name: String, _ value: AttributeValue, stamp: SessionVersion, dirty: Bool, into out: UnsafeMutableBufferPointer<UInt8>,
        at cursor: inout Int
    ) {
        writeLength(name.utf8.count, into: out, at: &cursor)
        writeLength(value.bytes.count, into: out, at: &cursor)
        out[cursor] = value.encoding.rawValue
        out[cursor + 1] = dirty ? 1 : 0
        UnsafeMutableRawBufferPointer(out).storeBytes(of: stamp.rawValue.littleEndian, toByteOffset: cursor + 2, as: UInt64.self)
        cursor += 10
        for byte in name.utf8 {
            out[cursor] = byte
            cursor += 1
        }
        _ = UnsafeMutableBufferPointer(rebasing: out[cursor..<cursor + value.bytes.count]).initialize(fromContentsOf: value.bytes)
        cursor += value.bytes.count
    }

    private static func lengthByteCount(_ length: Int) -> Int {
        LEB128.byteCount(length)
    }

    fileprivate static func writeLength(_ length: Int, into out: UnsafeMutableBufferPointer<UInt8>, at cursor: inout Int) {
        LEB128.write(UInt64(length), into: UnsafeMutableRawBufferPointer(out), at: &cursor)
    }

    /// A length of a record this store wrote itself, so it is well formed.
    @inline(__always)
    fileprivate static func readLength(_ buffer: UnsafeBufferPointer<UInt8>, _ offset: inout Int) -> Int {
        // Names and most values are shorter than 128 bytes: one byte, one branch.
        let first = buffer[offset]
        guard first & 0x80 != 0 else {
            offset += 1
            return Int(first)
        }
        switch LEB128.read(UInt64.self, from: UnsafeRawBufferPointer(buffer), at: &offset) {
        case .success(let length): return Int(length)
        case .failure(let failure): preconditionFailure("packed attribute record corrupted: \(failure)")
        }
    }
}

/// One change for ``PackedAttributes/apply(_:)``: set `value`, or remove the attribute when nil.
struct AttributeWrite {
    var name: String
    var value: AttributeValue?
    var stamp: SessionVersion
    var dirty: Bool
}
