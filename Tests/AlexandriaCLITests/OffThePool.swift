import Foundation
import Testing

/// Runs a suite's tests on threads of their own, not Swift's cooperative pool.
///
/// These tests are synchronous and wait on `alexandria` processes for seconds at a time. Swift Testing runs a
/// synchronous test on the thread of the task that calls it, by default a cooperative one, and the pool has one
/// thread per core: two such tests would stall every async test in the process (the in-process clients of the peer
/// tests, whose peers then time their handshakes out). Under this trait they run on `BlockingTestExecutor`'s threads,
/// which also bounds how many process-starting tests run at once on a 2-core machine.
struct OffThePool: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(BlockingTestExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OffThePool {
    /// Run on threads of their own (see `OffThePool`).
    static var offThePool: Self { OffThePool() }
}

/// A task executor on a few plain threads, for tests that block.
final class BlockingTestExecutor: TaskExecutor, @unchecked Sendable {
    /// Process-starting tests at once: as many as the cores (two in CI), as when they ran on the cooperative pool.
    static let shared = BlockingTestExecutor(threads: max(2, ProcessInfo.processInfo.activeProcessorCount))

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    init(threads: Int) {
        for i in 0..<threads {
            let thread = Thread { [self] in work() }
            thread.name = "blocking-tests-\(i)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
