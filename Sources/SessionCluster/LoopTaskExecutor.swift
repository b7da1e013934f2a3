import NIOCore

/// Runs Swift tasks on one NIO event loop, so that a task calling into the node that owns
/// the loop reaches it directly and is resumed on the same thread (no hand-off to the
/// cooperative pool and back, no wake-up of another thread).
final class LoopTaskExecutor: TaskExecutor {
    private let loop: any EventLoop

    init(loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
