import ClusterProtocol
import SessionCore

/// N cluster nodes in one process on virtual time, driven by one seeded random source.
///
/// The network carries every ``Effect/send(_:to:channel:)`` with a latency drawn from the
/// seed. Datagrams may be dropped, duplicated and reordered; stream messages keep their
/// order per link (TCP) and are lost only when the link is cut, the sender crashed, or a
/// rare "connection reset" fault drops one. Faults: symmetric and one-way partitions, crash,
/// restart with empty memory, pause and resume (the node wakes with stale state), clock
/// jumps.
///
/// A cut is either silent (packets vanish, as behind a DROP rule on the receiver) or
/// refused at the sender (a DROP rule on the sender's own output: `sendmsg` fails with
/// EPERM at once). Each node has a transport modelled on the runtime's
/// (``TransportModel``): a refused datagram fails alone (or, in a broken model, closes the
/// UDP endpoint); a refused stream send or a connection to a crashed peer fails the link,
/// whose later messages wait (bounded) until it reconnects after ``SocketRecovery``'s
/// backoff. After every step the ``Checker`` tests the invariants of ARCHITECTURE.md; the
/// same seed always replays the same run, step for step.
///
/// ```swift
/// let simulation = Simulation(SimulationConfiguration(nodes: 5, seed: 42))
/// simulation.startAll()
/// simulation.run(until: { $0.isStable }, within: 5_000)
/// let id = simulation.write(through: 2, .create(metadata, changes), to: sessionID)
/// simulation.crash(node: 0)
/// ```
package final class Simulation {
    /// The run's settings.
    package let configuration: SimulationConfiguration
    /// Virtual time, in milliseconds since the run began.
    package private(set) var now = Timestamp(milliseconds: 1_000_000)
    /// The nodes, by index.
    package private(set) var nodes: [SimulatedNode]
    /// The seeded source of every random choice the simulator makes.
    package var random: SeededRandom
    /// The size of a message on the wire, from the encoder (before compression).
    package var messageSize: (ClusterMessage) -> Int = MessageSize.encoded
    /// Bytes sent, by message kind.
    package private(set) var bytesSent: [String: Int] = [:]
    /// Messages sent, by message kind.
    package private(set) var messagesSent: [String: Int] = [:]
    /// Message faults in force (drop, duplicate, delay, connection resets).
    package var faults: MessageFaults
    /// The model of acknowledged writes and the invariant checks.
    package let checker: Checker
    /// Steps taken (deliveries and ticks).
    package private(set) var steps = 0
    /// Whether the checker runs after every step. A caller that turns it off for a long
    /// quiet stretch checks at its own pace (``Checker/checkAfterStep()``).
    package var checksEveryStep = true

    private var queue = EventQueue()
    /// Links whose messages vanish in the network.
    private var blocked: Set<Link> = []
    /// Links whose sender's own sends fail at once.
    private var refused: Set<Link> = []
    /// Counts ``heal()`` calls, so that scheduled faults of an episode already healed do nothing.
    package private(set) var heals = 0
    private var lastStreamDelivery: [Link: Timestamp] = [:]
    private var nextRequest: UInt64 = 0

    /// Creates the nodes (not started).
    package init(_ configuration: SimulationConfiguration) {
        self.configuration = configuration
        self.random = SeededRandom(seed: configuration.seed)
        self.faults = configuration.faults
        self.checker = Checker()
        self.nodes = (0..<configuration.nodes).map { index in
            SimulatedNode(index: index, id: NodeID("n\(index + 1)"), address: PeerAddress(host: "10.0.0.\(index + 1)", port: 7000))
        }
        checker.simulation = self
    }

    // MARK: Nodes

    /// The configuration node `index` runs with in incarnation `incarnation`.
    func nodeConfiguration(_ index: Int, incarnation: UInt64) -> NodeConfiguration {
        let seeds = (0..<min(configuration.nodes, configuration.seedCount)).map { nodes[$0].address }
        var node = NodeConfiguration(id: nodes[index].id, address: nodes[index].address, incarnation: incarnation, seeds: seeds)
        node.replicationFactor = configuration.replicationFactor
        node.partitionCount = configuration.partitionCount
        node.maxQueuedBytesPerPeer = configuration.maxQueuedBytesPerPeer
        node.stateTransferChunkBytes = configuration.stateTransferChunkBytes
        node.randomSeed = configuration.seed &+ UInt64(index) &* 0x9E37_79B9 &+ incarnation
        configuration.adjust(&node)
        return node
    }

    /// Starts every node (a few milliseconds apart, as processes do).
    package func startAll() {
        for index in nodes.indices { start(node: index) }
    }

    /// Starts node `index` with an empty store (a first start or a restart).
    package func start(node index: Int) {
        nodes[index].generation += 1
        let incarnation = UInt64(nodes[index].generation) * 1000
        let store = SessionStore(configuration: SessionStore.Configuration(shardCount: 4))
        // Each start gets its own monotonic origin, as a process on another machine (or a
        // restart) would: a monotonic time that leaked across nodes would be off by days.
        // Drawn from a generator of its own, so the run's random stream is unchanged.
        var origins = SeededRandom(seed: configuration.seed ^ (UInt64(index) << 40) ^ UInt64(nodes[index].generation))
        nodes[index].monotonicOffset = Int64.random(in: 0...1_000_000_000, using: &origins)
        let node = ClusterNode(
            configuration: nodeConfiguration(index, incarnation: incarnation), store: store,
            sessionClock: Self.sessionClock(monotonicOffset: nodes[index].monotonicOffset, wallOffset: nodes[index].wallClockOffset))
        node.unsafeAcknowledgeBeforeReplication = configuration.brokenAcknowledgeBeforeReplication
        nodes[index].node = node
        nodes[index].paused = false
        nodes[index].deferred = []
        resetTransport(of: index)
        checker.forgetRequests(of: index)
        perform(node.handle(.start, now: coreTime(index)), by: index)
    }

    /// Kills node `index`: its memory is gone and its links reset.
    package func crash(node index: Int) {
        nodes[index].node = nil
        nodes[index].generation += 1
        nodes[index].deferred = []
        resetTransport(of: index)
        checker.forgetRequests(of: index)
    }

    /// Restarts a crashed node with empty memory and a new incarnation.
    package func restart(node index: Int) {
        if nodes[index].node != nil { crash(node: index) }
        start(node: index)
    }

    /// Stops node `index` without losing its state; stream messages wait, datagrams are lost.
    package func pause(node index: Int) { nodes[index].paused = true }

    /// Resumes a paused node, which sees time jump and works on from its stale state.
    package func resume(node index: Int) {
        guard nodes[index].paused else { return }
        nodes[index].paused = false
        let waiting = nodes[index].deferred
        nodes[index].deferred = []
        for event in waiting { queue.push(time: now, event) }
    }

    /// Steps node `index`'s wall clock by `milliseconds`, either way, as NTP or an operator
    /// setting the time does. Only session times (last access, expiry) see it: the core's
    /// own clock is monotonic, as the runtime's is.
    package func stepWallClock(node index: Int, by milliseconds: Int64) {
        nodes[index].wallClockOffset += milliseconds
        nodes[index].node?.sessionClock = Self.sessionClock(
            monotonicOffset: nodes[index].monotonicOffset, wallOffset: nodes[index].wallClockOffset)
    }

    /// Node `index`'s monotonic clock: virtual time from an origin of its own.
    package func coreTime(_ index: Int) -> Timestamp { now.adding(milliseconds: nodes[index].monotonicOffset) }

    /// Maps a node's monotonic time back to virtual time, then to its wall clock.
    private static func sessionClock(monotonicOffset: Int64, wallOffset: Int64) -> @Sendable (Timestamp) -> Timestamp {
        { $0.adding(milliseconds: wallOffset - monotonicOffset) }
    }

    /// Asks node `index` to leave the cluster gracefully.
    package func leave(node index: Int) {
        guard let node = nodes[index].node else { return }
        perform(node.handle(.leave, now: coreTime(index)), by: index)
    }

    /// Cuts every link between the two groups, both ways; with `sendErrors` the senders'
    /// own sends fail, otherwise packets vanish.
    package func partition(_ side: [Int], from other: [Int], sendErrors: Bool = false) {
        cutOneWay(from: side, to: other, sendErrors: sendErrors)
        cutOneWay(from: other, to: side, sendErrors: sendErrors)
    }

    /// Cuts the links from `senders` to `receivers` only.
    package func cutOneWay(from senders: [Int], to receivers: [Int], sendErrors: Bool = false) {
        for a in senders {
            for b in receivers { _ = sendErrors ? refused.insert(Link(from: a, to: b)) : blocked.insert(Link(from: a, to: b)) }
        }
    }

    /// Restores the links between the two groups, both ways (a flapping link comes back).
    package func restore(_ side: [Int], from other: [Int]) {
        for a in side {
            for b in other {
                for link in [Link(from: a, to: b), Link(from: b, to: a)] {
                    blocked.remove(link)
                    refused.remove(link)
                }
            }
        }
    }

    /// Restores every link.
    package func heal() {
        blocked.removeAll()
        refused.removeAll()
        heals += 1
    }

    /// Node `index`'s wall-clock time, for session timestamps made outside the core.
    package func wallTime(_ index: Int) -> Timestamp { now.adding(milliseconds: nodes[index].wallClockOffset) }

    /// The running, unpaused nodes.
    package var liveIndices: [Int] { nodes.indices.filter { nodes[$0].node != nil && !nodes[$0].paused } }

    // MARK: Requests

    /// Sends a write through node `index`; the completion lands in ``checker``.
    @discardableResult
    package func write(
        through index: Int, _ operation: WriteOperation, to session: SessionID, concern: WriteConcern? = nil,
        deadline: Timestamp? = nil
    ) -> RequestID? {
        guard let node = nodes[index].node, !nodes[index].paused else { return nil }
        nextRequest += 1
        let requestID = RequestID(nextRequest)
        checker.issuedWrite(requestID, through: index, operation, to: session, concern: concern ?? node.configuration.defaultWriteConcern)
        perform(
            node.handle(.write(operation, to: session, concern: concern, requestID: requestID, deadline: deadline), now: coreTime(index)),
            by: index)
        endTurn(of: index)
        return requestID
    }

    /// Reads through node `index`; the completion lands in ``checker``.
    @discardableResult
    package func read(through index: Int, _ session: SessionID) -> RequestID? {
        guard let node = nodes[index].node, !nodes[index].paused else { return nil }
        nextRequest += 1
        let requestID = RequestID(nextRequest)
        checker.issuedRead(requestID, through: index, session)
        perform(node.handle(.read(session, touch: true, requestID: requestID), now: coreTime(index)), by: index)
        endTurn(of: index)
        return requestID
    }

    /// Schedules `action` at virtual time `at`.
    package func schedule(at time: Timestamp, _ action: @escaping (Simulation) -> Void) {
        queue.push(time: time, .action(action))
    }

    // MARK: Running

    /// Takes one step: the earliest due tick or delivery. Returns false when nothing is due
    /// before `limit`.
    @discardableResult
    package func step(limit: Timestamp) -> Bool {
        var tickIndex: Int?
        var tickTime = limit
        for index in nodes.indices {
            guard let node = nodes[index].node, !nodes[index].paused else { continue }
            let due = max(now, node.nextTickDeadline.adding(milliseconds: -nodes[index].monotonicOffset))
            if due < tickTime || (due == tickTime && tickIndex == nil && due < limit) {
                tickTime = due
                tickIndex = index
            }
        }
        if let eventTime = queue.peekTime, eventTime <= tickTime, eventTime <= limit {
            let event = queue.pop()!
            now = max(now, eventTime)
            handle(event)
        } else if let tickIndex, tickTime <= limit {
            now = tickTime
            let node = nodes[tickIndex].node!
            perform(node.handle(.tick, now: coreTime(tickIndex)), by: tickIndex)
            endTurn(of: tickIndex)
        } else {
            now = max(now, limit)
            return false
        }
        steps += 1
        if checksEveryStep { checker.checkAfterStep() }
        return true
    }

    /// Runs for `milliseconds` of virtual time.
    package func run(for milliseconds: Int64) {
        let limit = now.adding(milliseconds: milliseconds)
        while step(limit: limit) {}
    }

    /// Runs until `condition` holds (checked every `every` ms) or `milliseconds` pass.
    /// Returns whether it held.
    @discardableResult
    package func run(until condition: (Simulation) -> Bool, within milliseconds: Int64, every: Int64 = 10) -> Bool {
        let end = now.adding(milliseconds: milliseconds)
        while now < end {
            if condition(self) { return true }
            run(for: min(every, end.milliseconds(since: now)))
        }
        return condition(self)
    }

    private func handle(_ event: Event) {
        switch event {
        case .action(let action):
            action(self)
        case .deliver(let delivery):
            deliver(delivery)
        }
    }

    /// Delivers `message` to node `index` now, as an attacker on the network would replay a
    /// recorded datagram: from no node, through no link, past every cut.
    package func replay(_ message: ClusterMessage, to index: Int) {
        guard let node = nodes[index].node, !nodes[index].paused, nodes[index].datagramOpen else { return }
        perform(node.handle(.message(message), now: coreTime(index)), by: index)
        endTurn(of: index)
    }

    private func deliver(_ delivery: Delivery) {
        let target = delivery.to
        guard let node = nodes[target].node else { return }
        let link = Link(from: delivery.from, to: target)
        // A cut drops what was already on the way, as a DROP rule on the receiver does.
        if blocked.contains(link) || refused.contains(link) { return }
        if delivery.channel == .datagram && !nodes[target].datagramOpen { return }
        if delivery.channel == .stream && nodes[delivery.from].generation != delivery.senderGeneration { return }
        if nodes[target].paused {
            if delivery.channel == .stream { nodes[target].deferred.append(.deliver(delivery)) }
            return
        }
        if let trace = configuration.trace { trace("\(now.milliseconds - 1_000_000) n\(delivery.from + 1)->n\(target + 1) \(delivery.message)") }
        perform(node.handle(.message(delivery.message), now: coreTime(target)), by: target)
        endTurn(of: target)
    }

    /// What the runtime does once its event loop has run the inputs at hand: send the deltas
    /// that writes wait on. Here every input is a turn of its own.
    private func endTurn(of index: Int) {
        guard configuration.flushAtEndOfTurn, let node = nodes[index].node else { return }
        perform(node.handle(.endOfTurn, now: coreTime(index)), by: index)
    }

    /// Carries out a node's effects: sends go on the network; completions go to the checker.
    func perform(_ effects: [Effect], by index: Int) {
        for effect in effects {
            switch effect {
            case .send(let message, let member, let channel):
                guard let target = nodes.firstIndex(where: { $0.address == member.address }), target != index else { continue }
                send(message, from: index, to: target, channel: channel)
            case .completeWrite(let requestID, let result):
                checker.completedWrite(requestID, by: index, result)
            case .completeRead(let requestID, let result):
                checker.completedRead(requestID, by: index, result)
            case .event(let event):
                checker.observed(event, by: index)
            case .installedView, .disconnect, .refusedPastDeadline:
                break
            }
        }
    }

    private func send(_ message: ClusterMessage, from: Int, to: Int, channel: Effect.Channel) {
        let kind = MessageSize.kind(message)
        bytesSent[kind, default: 0] += messageSize(message)
        messagesSent[kind, default: 0] += 1
        let link = Link(from: from, to: to)
        switch channel {
        case .datagram:
            guard nodes[from].datagramOpen else { return }
            if refused.contains(link) { return datagramRefused(by: from) }
        case .stream:
            if nodes[from].links[to]?.isUp == false { return waitForReconnect(message, from: from, to: to) }
            // A refused send, or a connection to a crashed peer (reset, then refused), fails the link.
            if refused.contains(link) || nodes[to].node == nil { return linkFailed(from: from, to: to) }
        }
        if blocked.contains(link) { return }
        var latency = Int64.random(in: configuration.latencyMilliseconds, using: &random)
        if faults.delayProbability > 0, Double.random(in: 0..<1, using: &random) < faults.delayProbability {
            latency += Int64.random(in: faults.extraDelayMilliseconds, using: &random)
        }
        let delivery = Delivery(message: message, from: from, to: to, channel: channel, senderGeneration: nodes[from].generation)
        transmit(delivery, latency: latency)
    }

    private func transmit(_ delivery: Delivery, latency: Int64) {
        let link = Link(from: delivery.from, to: delivery.to)
        switch delivery.channel {
        case .datagram:
            if Double.random(in: 0..<1, using: &random) < faults.datagramDropProbability { return }
            queue.push(time: now.adding(milliseconds: latency), .deliver(delivery))
            if Double.random(in: 0..<1, using: &random) < faults.datagramDuplicateProbability {
                let again = latency + Int64.random(in: 0...20, using: &random)
                queue.push(time: now.adding(milliseconds: again), .deliver(delivery))
            }
        case .stream:
            if Double.random(in: 0..<1, using: &random) < faults.streamResetProbability { return }
            // In order per link, as TCP delivers.
            let at = max(now.adding(milliseconds: latency), lastStreamDelivery[link] ?? now)
            lastStreamDelivery[link] = at
            queue.push(time: at, .deliver(delivery))
        }
    }

    // MARK: The transport

    private func resetTransport(of index: Int) {
        nodes[index].datagramOpen = true
        nodes[index].datagramRecovery = configuration.transport.datagramRecovery()
        nodes[index].links = [:]
    }

    /// A datagram the sender's host refused: it fails alone, unless the model closes the
    /// whole endpoint on a send error (then reopened after the backoff, if ever).
    private func datagramRefused(by index: Int) {
        guard configuration.transport.sendErrorClosesDatagramEndpoint else { return }
        nodes[index].datagramOpen = false
        guard let at = nodes[index].datagramRecovery.failed(now: now) else { return }
        let generation = nodes[index].generation
        schedule(at: at) { simulation in
            guard simulation.nodes[index].generation == generation else { return }
            simulation.nodes[index].datagramOpen = true
            simulation.nodes[index].datagramRecovery.opened()
        }
    }

    /// The link from `from` to `to` failed: what it carried is lost, and it reconnects
    /// after the backoff.
    private func linkFailed(from: Int, to: Int) {
        var link = nodes[from].links[to] ?? SimulatedLink(recovery: configuration.transport.linkRecovery())
        link.isUp = false
        link.waiting = []
        link.waitingBytes = 0
        nodes[from].links[to] = link
        scheduleReconnect(from: from, to: to)
    }

    /// A message for a link that is down waits for the reconnect, within the per-peer bound;
    /// past it the queue is dropped, as the runtime drops it.
    private func waitForReconnect(_ message: ClusterMessage, from: Int, to: Int) {
        // The runtime bounds this queue with the encoder's estimate, before encoding.
        let size = message.estimatedBodyBytes
        if nodes[from].links[to]!.waitingBytes + size > configuration.maxQueuedBytesPerPeer {
            nodes[from].links[to]!.waiting = []
            nodes[from].links[to]!.waitingBytes = 0
        }
        nodes[from].links[to]!.waiting.append(message)
        nodes[from].links[to]!.waitingBytes += size
    }

    private func scheduleReconnect(from: Int, to: Int) {
        guard !nodes[from].links[to]!.retryPending, let at = nodes[from].links[to]!.recovery.failed(now: now) else { return }
        nodes[from].links[to]!.retryPending = true
        let generation = nodes[from].generation
        schedule(at: at) { simulation in
            guard simulation.nodes[from].generation == generation else { return }
            simulation.reconnect(from: from, to: to)
        }
    }

    /// A connection attempt: across a cut or to a crashed peer it fails again; otherwise the
    /// link is up and its waiting messages leave in order.
    private func reconnect(from: Int, to: Int) {
        nodes[from].links[to]!.retryPending = false
        let link = Link(from: from, to: to)
        if refused.contains(link) || blocked.contains(link) || nodes[to].node == nil {
            return scheduleReconnect(from: from, to: to)
        }
        nodes[from].links[to]!.isUp = true
        nodes[from].links[to]!.recovery.opened()
        let waiting = nodes[from].links[to]!.waiting
        nodes[from].links[to]!.waiting = []
        nodes[from].links[to]!.waitingBytes = 0
        for message in waiting {
            let latency = Int64.random(in: configuration.latencyMilliseconds, using: &random)
            let delivery = Delivery(message: message, from: from, to: to, channel: .stream, senderGeneration: nodes[from].generation)
            transmit(delivery, latency: latency)
        }
    }

    // MARK: Observations

    /// The node currently leading with the highest term among the live ones.
    package var leader: Int? {
        liveIndices.filter { nodes[$0].node!.currentRole == .leader }.max { nodes[$0].node!.currentTerm < nodes[$1].node!.currentTerm }
    }

    /// True when every live node is in one view of all of them, with one leader, all
    /// partitions filled and nothing queued.
    package var isStable: Bool {
        let live = liveIndices
        guard !live.isEmpty, let leader, let view = nodes[leader].node!.installedView else { return false }
        guard view.members.count == live.count else { return false }
        for index in live {
            let node = nodes[index].node!
            guard node.isReady, node.installedView == view, node.isFilled, node.isQuiet,
                view.members.contains(node.currentMember)
            else { return false }
            if index != leader && node.currentRole == .leader { return false }
        }
        return true
    }

    /// The live node that owns `session`, by its own view.
    package func owner(of session: SessionID) -> Int? {
        liveIndices.first { nodes[$0].node!.isOwner(of: session) }
    }

    /// The bytes sent of the given kinds, summed.
    package func bytes(of kinds: [String]) -> Int { kinds.reduce(0) { $0 + (bytesSent[$1] ?? 0) } }

    /// Forgets the traffic counted so far.
    package func resetTraffic() {
        bytesSent.removeAll()
        messagesSent.removeAll()
    }
}

/// One simulated process.
package struct SimulatedNode {
    /// Its index in ``Simulation/nodes``.
    package let index: Int
    /// Its id.
    package let id: NodeID
    /// Its address.
    package let address: PeerAddress
    /// The running protocol core; nil while crashed.
    package internal(set) var node: ClusterNode?
    /// Counts starts and crashes; stream messages from an older generation are lost.
    package internal(set) var generation = 0
    /// True while paused.
    package internal(set) var paused = false
    /// How far its wall clock is from virtual time.
    package internal(set) var wallClockOffset: Int64 = 0
    /// How far its monotonic clock is from virtual time (a new origin at every start).
    package internal(set) var monotonicOffset: Int64 = 0
    var deferred: [Event] = []
    /// False while its UDP endpoint is closed (a broken transport model closes it).
    package internal(set) var datagramOpen = true
    var datagramRecovery = TransportModel.runtime.datagramRecovery()
    /// Its outbound stream links, by peer index, once one has failed.
    var links: [Int: SimulatedLink] = [:]
}

/// An outbound stream link that failed at least once: down while it waits to reconnect.
struct SimulatedLink {
    var isUp = true
    var retryPending = false
    var recovery: SocketRecovery
    var waiting: [ClusterMessage] = []
    var waitingBytes = 0
}

struct Link: Hashable {
    var from: Int
    var to: Int
}

struct Delivery {
    var message: ClusterMessage
    var from: Int
    var to: Int
    var channel: Effect.Channel
    var senderGeneration: Int
}

enum Event {
    case deliver(Delivery)
    case action((Simulation) -> Void)
}

/// A min-heap of events by time, first in first out among equal times (so runs replay).
struct EventQueue {
    private var heap: [(time: Timestamp, order: UInt64, event: Event)] = []
    private var counter: UInt64 = 0

    var peekTime: Timestamp? { heap.first?.time }

    mutating func push(time: Timestamp, _ event: Event) {
        counter += 1
        heap.append((time, counter, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Event? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var best = parent
            if left < heap.count && precedes(left, best) { best = left }
            if right < heap.count && precedes(right, best) { best = right }
            guard best != parent else { break }
            heap.swapAt(parent, best)
            parent = best
        }
        return top.event
    }

    private func precedes(_ a: Int, _ b: Int) -> Bool {
        (heap[a].time, heap[a].order) < (heap[b].time, heap[b].order)
    }
}
