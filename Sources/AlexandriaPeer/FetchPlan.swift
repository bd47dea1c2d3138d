import AlexandriaCore
import AlexandriaStore
import Synchronization

/// The shared state of one file fetch: the chosen chunk list, the schedule (`FetchSchedule`, which decides who
/// fetches what), who misbehaved, and the signal that wakes idle peers. The peers' tasks are its drivers: they feed
/// it events (a chunk list offered, a chunk verified, a peer failed) and carry out what it returns.
actor FetchPlan {
    let recipeBox: RecipeBox
    /// Nil until the chunks already in the local store are in the output; only then do peers start pulling.
    private var schedule: FetchSchedule?
    var received: [String: UInt64] = [:]
    var dropped: [String: String] = [:]
    /// Peers that sent wrong bytes, a bad chunk list or false availability (their score drops).
    var misbehaved: Set<String> = []
    var downloaded: UInt64 = 0
    let stallSeconds: Double
    /// Set when the fetch cannot go on (the output file cannot be written): every peer stops.
    private(set) var fatal: Error?
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// Bumped on every event that can give an idle peer work or end the fetch; idle peers wait on it.
    nonisolated let changes = ChangeSignal()
    /// The schedule's clock: seconds since the plan was made.
    nonisolated let origin = ContinuousClock.now

    init(stallSeconds: Double) {
        recipeBox = RecipeBox()
        self.stallSeconds = stallSeconds
    }

    nonisolated func now() -> Double {
        let elapsed = ContinuousClock.now - origin
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    var recipe: FileRecipe? { recipeBox.recipe }
    var started: Bool { schedule != nil }

    /// Whether this recipe is the chosen one. The first valid recipe wins (`first` is then true: the caller fills the
    /// output from the local store and calls `start`); later ones must have the same root or that peer is not used.
    func offer(_ recipe: FileRecipe) -> (accepted: Bool, first: Bool) {
        if let current = recipeBox.recipe { return (current.merkleRoot == recipe.merkleRoot, false) }
        recipeBox.recipe = recipe
        return (true, true)
    }

    /// The chunks at `alreadyHeld` are in the output; the rest are to be fetched.
    func start(alreadyHeld: Set<Int>) {
        guard let recipe = recipeBox.recipe, schedule == nil else { return }
        schedule = FetchSchedule(
            chunkCount: recipe.chunks.count, alreadyHeld: alreadyHeld, stallSeconds: stallSeconds)
        wake()
    }

    func fail(_ error: Error) {
        if fatal == nil { fatal = error }
        wake()
    }

    /// Waits until the peers can start pulling; nil if there is nothing to pull from this plan.
    func waitForStart() async -> FileRecipe? {
        if schedule == nil && fatal == nil && dropped.count < 1_000 {
            await withCheckedContinuation { waiters.append($0) }
        }
        return schedule != nil && fatal == nil ? recipeBox.recipe : nil
    }

    func giveUpWaiting() { wake() }

    private func wake() {
        for w in waiters { w.resume() }
        waiters = []
        changes.bump()
    }

    var isComplete: Bool { fatal == nil && schedule?.isComplete == true }

    /// Up to `count` chunk indices for `peer` to request (only ones it has); see `FetchSchedule.take`.
    func take(peer: String, count: Int, has: (Int) -> Bool) -> [Int] {
        guard fatal == nil else { return [] }
        return schedule?.take(peer: peer, count: count, now: now(), has: has) ?? []
    }

    /// When `take` could next give `peer` a chunk another peer holds, in seconds on `now()`'s clock.
    func nextTakeover(for peer: String, has: (Int) -> Bool) -> Double? {
        schedule?.nextTakeover(for: peer, has: has)
    }

    /// Returns true if this delivery was the first for one of `indices`.
    func complete(_ indices: [Int], peer: String, bytes: UInt64) -> Bool {
        var fresh = false
        for i in indices where schedule?.delivered(i, peer: peer) == true { fresh = true }
        if fresh {
            received[peer, default: 0] += bytes
            downloaded += bytes
            if schedule?.isComplete == true { changes.bump() }
        }
        return fresh
    }

    /// A peer failed or went away: its chunks go back to the queue, and idle peers wake to take them.
    func release(peer: String, reason: String?) {
        schedule?.release(peer: peer)
        if let reason { dropped[peer] = reason }
        changes.bump()
    }

    func penalize(_ peer: String) { misbehaved.insert(peer) }

    func snapshot() -> (Int, UInt64) { (schedule?.done.count ?? 0, downloaded) }
}

final class RecipeBox: @unchecked Sendable { var recipe: FileRecipe? }

/// A counter that tasks wait on: `wait(after:until:)` returns once the counter has moved past the value the waiter
/// saw, or at the deadline, or when the waiting task is cancelled. Reading the counter before checking a condition and
/// waiting after it loses no wake-up.
final class ChangeSignal: Sendable {
    private struct State {
        var generation = 0
        var nextID = 0
        var waiters: [Int: (after: Int, continuation: CheckedContinuation<Void, Never>)] = [:]
    }
    private let state = Mutex(State())

    var generation: Int { state.withLock { $0.generation } }

    func bump() {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation += 1
            let ready = state.waiters.filter { $0.value.after < state.generation }
            for id in ready.keys { state.waiters[id] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once the counter passed `generation`, or (if given) at `deadline`.
    func wait(after generation: Int, until deadline: ContinuousClock.Instant?) async {
        await withTaskGroup(of: Void.self) { group in
            if let deadline {
                group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            }
            group.addTask { await self.changed(after: generation) }
            await group.next()
            group.cancelAll()
        }
    }

    private func changed(after generation: Int) async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.generation > generation || Task.isCancelled { return true }
                    state.waiters[id] = (generation, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.continuation.resume()
        }
    }
}
