import SessionCore

/// Which sequence numbers of one sender were seen, as IPsec's anti-replay window (RFC 4303
/// §3.4.3): the highest, and a map of the 64 below it. A number is accepted once, and
/// only if it is not older than the window.
struct ReplayWindow {
    static let size: UInt64 = 64
    private(set) var highest: UInt64 = 0
    /// Bit `i`: `highest - i` was seen.
    private var seen: UInt64 = 0

    /// True, and recorded, the first time `sequence` comes within the window; false for a
    /// repeat or a number too old to tell.
    mutating func accept(_ sequence: UInt64) -> Bool {
        if sequence > highest {
            let shift = sequence - highest
            seen = shift >= Self.size ? 1 : (seen << shift) | 1
            highest = sequence
            return true
        }
        let age = highest - sequence
        guard age < Self.size, seen & (1 << age) == 0 else { return false }
        seen |= 1 << age
        return true
    }
}

/// Freshness for what travels by datagram, where no connection binds a message to a time:
/// a heartbeat counts once per sender incarnation and sequence, a heartbeat reply once per
/// replier and heartbeat, a probe reply only for a probe this node sent and has not had
/// answered. So a recorded heartbeat of a node that died (or of a dead leader), replayed,
/// is no sign of life and cannot hold off its removal or the election of a new leader.
///
/// Bounded: one window per member heard (a stranger cannot make datagrams that pass the
/// MAC), pruned to the view when it grows past ``maxSenders``; at most ``maxProbes``
/// probes outstanding.
struct DatagramFreshness {
    static let maxSenders = 1_024
    static let maxProbes = 256

    private var heartbeats: [NodeID: (incarnation: UInt64, window: ReplayWindow)] = [:]
    private var replies: [NodeID: ReplayWindow] = [:]
    private var probes: [UInt64: NodeID] = [:]

    /// True the first time a heartbeat of `sender`'s incarnation with `sequence` comes; a
    /// heartbeat of an older incarnation than one already heard is never fresh.
    mutating func acceptHeartbeat(from sender: Member, sequence: UInt64) -> Bool {
        if let entry = heartbeats[sender.id], sender.incarnation <= entry.incarnation {
            guard sender.incarnation == entry.incarnation else { return false }
            return heartbeats[sender.id]!.window.accept(sequence)
        }
        var window = ReplayWindow()
        _ = window.accept(sequence)
        heartbeats[sender.id] = (sender.incarnation, window)
        return true
    }

    /// True the first time `replier` answers this node's heartbeat `sequence`.
    mutating func acceptReply(from replier: NodeID, sequence: UInt64) -> Bool {
        replies[replier, default: ReplayWindow()].accept(sequence)
    }

    /// Notes a probe sent about `target`.
    mutating func sentProbe(_ probeID: UInt64, about target: NodeID) {
        probes[probeID] = target
        if probes.count > Self.maxProbes, let oldest = probes.keys.min() { probes.removeValue(forKey: oldest) }
    }

    /// True for the first reply to a probe this node sent about `target`.
    mutating func acceptProbeReply(_ probeID: UInt64, about target: NodeID) -> Bool {
        guard probes[probeID] == target else { return false }
        probes.removeValue(forKey: probeID)
        return true
    }

    /// Forgets senders outside `members` once the tables grew past ``maxSenders``.
    mutating func prune(keeping members: Set<NodeID>) {
        if heartbeats.count > Self.maxSenders { heartbeats = heartbeats.filter { members.contains($0.key) } }
        if replies.count > Self.maxSenders { replies = replies.filter { members.contains($0.key) } }
    }
}
