/// A session's version: the owner raises it by one with every write that changes the
/// session, and stamps each attribute it writes with it. Versions only grow, so a replica
/// keeps the newer of two values by comparing stamps, and a conditional read can ask
/// whether anything changed since the version it holds. 0 is "no version yet".
///
/// A concrete type rather than a generic tagged integer: a generic struct used from
/// another module (the wire decoder) goes through its metadata at runtime.
public struct SessionVersion: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByIntegerLiteral
{
    /// The number.
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }
    /// The version of the next write after this one.
    package var next: SessionVersion { SessionVersion(rawValue: rawValue + 1) }
    public static func < (lhs: SessionVersion, rhs: SessionVersion) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "v\(rawValue)" }
}
