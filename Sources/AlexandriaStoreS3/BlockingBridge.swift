import Dispatch
import NIOPosix

/// Runs async object-store calls for the store's synchronous read path, and waits for them.
///
/// The store reads on whatever thread calls it, often a thread of Swift's cooperative pool (two threads on a
/// 2-core machine). Waiting there for a task that itself needs that pool could deadlock, so the tasks started here
/// prefer their own executor (a small pool of dedicated threads) and the S3 client runs on its own event loops: a
/// blocked caller never holds up the work it waits for.
final class BlockingBridge: Sendable {
    let executor: ThreadPoolTaskExecutor

    init(threads: Int) { executor = ThreadPoolTaskExecutor(threads: threads) }

    func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: executor) {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }
}

/// Written once by the task, read once after the semaphore: the semaphore orders the two.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// A task executor on dedicated threads (a `NIOThreadPool`), outside Swift's cooperative pool.
final class ThreadPoolTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let pool: NIOThreadPool

    init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: max(1, threads))
        pool.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pool.submit { [self] _ in job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
