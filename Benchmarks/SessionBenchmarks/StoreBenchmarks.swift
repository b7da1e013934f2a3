import Benchmark
import SessionCore

/// The alternative to the sharded store that we measured against: one actor holding the
/// table. Every read pays an actor hop; the sharded store pays one uncontended lock.
actor ActorSessionTable {
    var sessions: [SessionID: Session] = [:]
    func insert(_ session: Session) { sessions[session.id] = session }
    func load(_ id: SessionID) -> Session? { sessions[id] }
}

func storeBenchmarks() {
    // Fixtures are built once, outside the measured closures: a closure that built (and on
    // return freed) 10,000 sessions would measure the allocator, not the store.
    let now = Timestamp(milliseconds: 1_000_000)
    let attributes = FixtureSessions.oneKilobyte
    let (store, ids) = FixtureSessions.store(count: 10_000, attributes: attributes, now: now)
    let table = ActorSessionTable()

    Benchmark(
        "Local read of a 1 KB session (sharded store)",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .mega)
    ) { benchmark in
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            blackHole(store.load(ids[index % ids.count], now: now, touch: false))
        }
        benchmark.stopMeasurement()
    }

    Benchmark(
        "Local read of a 1 KB session (actor table, the alternative)",
        configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .mega)
    ) { benchmark in
        if await table.sessions.isEmpty {
            for id in ids { await table.insert(store.load(id, now: now, touch: false)!) }
        }
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            blackHole(await table.load(ids[index % ids.count]))
        }
        benchmark.stopMeasurement()
    }

    Benchmark(
        "Local read of a 1 KB session, 50 concurrent tasks (sharded store)",
        configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .mega)
    ) { benchmark in
        let perTask = benchmark.scaledIterations.count / 50 + 1
        benchmark.startMeasurement()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<50 {
                group.addTask {
                    for index in 0..<perTask { blackHole(store.load(ids[(task * 7919 + index) % ids.count], now: now, touch: false)) }
                }
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark(
        "Local read of a 1 KB session, 50 concurrent tasks (actor table, the alternative)",
        configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .mega)
    ) { benchmark in
        if await table.sessions.isEmpty {
            for id in ids { await table.insert(store.load(id, now: now, touch: false)!) }
        }
        let perTask = benchmark.scaledIterations.count / 50 + 1
        benchmark.startMeasurement()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<50 {
                group.addTask {
                    for index in 0..<perTask { blackHole(await table.load(ids[(task * 7919 + index) % ids.count])) }
                }
            }
        }
        benchmark.stopMeasurement()
    }

    Benchmark(
        "Write one 100 B attribute of a 1 KB session, then drain its delta",
        configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .mega)
    ) { benchmark in
        let payload = AttributeValue(encoding: .json, bytes: Array(repeating: UInt8(ascii: "x"), count: 100))
        var counter = 0
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            let id = ids[index % ids.count]
            var changes = SessionChanges()
            counter += 1
            var value = payload
            value.bytes[0] = UInt8(truncatingIfNeeded: counter)
            changes.updated["last_page"] = value
            blackHole(try! store.apply(changes, to: id, now: now))
            if index % 64 == 63 { blackHole(store.drainDeltas(includeTouches: false)) }
        }
        blackHole(store.drainDeltas(includeTouches: false))
        benchmark.stopMeasurement()
    }
}
