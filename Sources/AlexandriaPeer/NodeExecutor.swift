import NIOCore
import NIOPosix

/// Where a node's tasks run: threads of the node's own, never Swift's cooperative pool.
///
/// The store and the catalog are synchronous (SQLite, `pread`, `pwrite`, `fsync`): a call blocks its thread for as
/// long as the disk takes. On the cooperative pool, which has one thread per core (two in CI), two such calls stall
/// every other task of the process, a peer's stall watchdog included. So every entry point of the node (the server,
/// gossip, the mirror, a fetch, the gateway through the `ServiceGroup`) runs under this executor as its task executor
/// preference (SE-0417): its child tasks, its nonisolated async code and the default actors it calls (`GossipNode`,
/// `Mirror`, `FetchPlan`) all execute here, and a blocking store call occupies one of these threads, not a
/// cooperative one.
///
/// Pitfall: the preference is inherited by child tasks only. An unstructured `Task {}` started from node code loses
/// it; node code starts none (every task belongs to a task group).
public final class NodeExecutor: TaskExecutor {
    /// Threads of the shared executor: enough that a few blocking store calls at once (a scrub, an fsync, SQLite
    /// waiting on another process's lock) leave others to serve peers, few enough to cost nothing when idle.
    public static let sharedThreads = max(8, 2 * System.coreCount)

    /// The executor every node entry point uses.
    public static let shared = NodeExecutor(threads: sharedThreads)

    private let pool: NIOThreadPool

    /// Starts `threads` threads; they live as long as the executor (the shared one, as long as the process).
    public init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        // The pool runs work items even after it is shut down (state `.cancelled`); it never is for `shared`.
        pool.submit { _ in job.runSynchronously(on: executor) }
    }

    /// Runs `body` with this executor as the task executor preference of the current task and its child tasks.
    public func run<T, Failure: Error>(
        isolation: isolated (any Actor)? = #isolation, _ body: () async throws(Failure) -> T
    ) async throws(Failure) -> T {
        if #available(macOS 15.0, *) {
            return try await withTaskExecutorPreference(self, isolation: isolation, operation: body)
        } else {
            return try await body()
        }
    }
}
