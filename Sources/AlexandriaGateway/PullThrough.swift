import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import AlexandriaPeer
import AlexandriaStore
import Foundation
import Logging
import ServiceLifecycle

/// Fetches a release file this node does not hold from the peers that hold it, so the gateway can stream it to a
/// client while it arrives. The fetch is the node's ordinary verified fetch (every chunk checked against its id, the
/// chunk list against the manifest's Merkle root, the whole file against its SHA-256) with chunks copied into the
/// store, so the node keeps the file afterwards and the mirror's budget governs it like any other. One fetch per
/// file, however many clients ask at once.
///
/// A `Service`: every fetch is a child task of the one task group `run` holds, so graceful shutdown (or cancellation)
/// cancels them all; a fetch asked for once that group has ended fails at once. Put it before the gateway in the
/// node's `ServiceGroup`, which shuts services down in reverse order.
public actor PullThrough: Service {
    public let store: ContentStore
    let identity: NodeIdentity
    /// The peers to fetch a release's files from (by manifest id).
    let peers: @Sendable (ContentHash) async -> [PeerAddress]
    let scratchDirectory: String
    let logger: Logger
    private var jobs: [ContentHash: PullJob] = [:]
    /// The fetches `pull` starts, for `run`'s task group.
    private let work: AsyncStream<@Sendable () async -> Void>
    private let submit: AsyncStream<@Sendable () async -> Void>.Continuation

    public init(
        store: ContentStore, identity: NodeIdentity, scratchDirectory: String, logger: Logger,
        peers: @escaping @Sendable (ContentHash) async -> [PeerAddress]
    ) {
        self.store = store
        self.identity = identity
        self.peers = peers
        self.scratchDirectory = scratchDirectory
        self.logger = logger
        (work, submit) = AsyncStream.makeStream()
    }

    /// Runs every fetch `pull` starts as a child task of one group, until graceful shutdown or cancellation, which
    /// cancels the fetches in flight.
    public nonisolated func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for await fetch in self.work { group.addTask { await fetch() } }
            }
        }
        submit.finish()
    }

    /// Starts (or joins) the fetch of `file` of the release `manifest`; nil when no peer is known to hold it.
    func pull(_ file: Manifest.File, of manifest: ContentHash) async -> PullJob? {
        if let job = jobs[file.sha256], !job.isFinished { return job }
        let peers = await self.peers(manifest)
        logger.info(
            "pull-through", metadata: ["file.address": "\(file.sha256)", "peers": "\(peers.map(\.description))"])
        guard !peers.isEmpty else { return nil }
        let job = PullJob(file: file)
        jobs[file.sha256] = job
        let fetcher = Fetcher(store: store, identity: identity, logger: logger)
        fetcher.copyIntoStore = true
        fetcher.onRecipe = { recipe in job.settle(recipe) }
        let scratch = scratchDirectory + "/alexandria-gateway-\(file.sha256.hex.prefix(24))-\(UUID().uuidString)"
        let logger = self.logger
        let fetch: @Sendable () async -> Void = {
            do {
                _ = try await fetcher.fetch(file.sha256, to: scratch, peers: peers, expectedRoot: file.merkleRoot)
                job.finish(nil)
            } catch {
                logger.info("pull-through failed", metadata: ["file.address": "\(file.sha256)", "error": "\(error)"])
                job.finish(error)
            }
            unlink(scratch)
            await self.forget(file.sha256, job)
        }
        if case .terminated = submit.yield(fetch) {
            // The node is shutting down: nothing runs the fetch.
            job.finish(CancellationError())
            jobs[file.sha256] = nil
        }
        return job
    }

    private func forget(_ address: ContentHash, _ job: PullJob) {
        if jobs[address] === job { jobs[address] = nil }
    }
}

/// One file being pulled through: its chunk list once settled, and how the fetch ended.
public final class PullJob: @unchecked Sendable {
    let file: Manifest.File
    private let lock = NSLock()
    private var recipe: FileRecipe?
    private var finished = false
    private var failure: Error?

    init(file: Manifest.File) { self.file = file }

    var isFinished: Bool { lock.withLock { finished } }

    func settle(_ recipe: FileRecipe) { lock.withLock { self.recipe = recipe } }

    func finish(_ error: Error?) {
        lock.withLock {
            finished = true
            failure = error
        }
    }

    /// The chunk list, once a peer's has been checked against the manifest; nil while waiting; throws when the fetch
    /// ended without one.
    func state() -> (recipe: FileRecipe?, finished: Bool, failure: Error?) {
        lock.withLock { (recipe, finished, failure) }
    }
}
