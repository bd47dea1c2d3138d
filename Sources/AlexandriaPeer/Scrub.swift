import AlexandriaCore
import AlexandriaStore
import Foundation
import Logging
import Synchronization

/// When a node scrubs its store: a decision over a clock the caller passes in, no I/O but `load` and `save`.
public struct ScrubSchedule: Sendable, Equatable {
    /// Seconds between scrubs; 0 never scrubs.
    public var intervalSeconds: Double
    /// When the last scrub finished; before the first one, when the node first ran (a new node does not scrub at
    /// once, and a node restarted more often than the interval still scrubs on time).
    public var last: Date

    public init(intervalSeconds: Double, last: Date) {
        self.intervalSeconds = intervalSeconds
        self.last = last
    }

    public func isDue(at now: Date) -> Bool {
        intervalSeconds > 0 && now.timeIntervalSince(last) >= intervalSeconds
    }

    /// Reads the time of the last scrub from `path` (one line: Unix seconds). Without one, starts counting at `now`
    /// and records that, so the first scrub comes one interval after the node first ran.
    public static func load(from path: String?, intervalSeconds: Double, now: Date) -> ScrubSchedule {
        if let path, let text = try? String(contentsOfFile: path, encoding: .utf8),
            let seconds = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), seconds.isFinite,
            seconds <= now.timeIntervalSince1970
        {
            return ScrubSchedule(intervalSeconds: intervalSeconds, last: Date(timeIntervalSince1970: seconds))
        }
        let schedule = ScrubSchedule(intervalSeconds: intervalSeconds, last: now)
        schedule.save(to: path)
        return schedule
    }

    /// Writes `last` to `path` (through a temporary file and a rename).
    public func save(to path: String?) {
        guard let path else { return }
        let temporary = path + ".tmp"
        let text = String(format: "%.3f\n", last.timeIntervalSince1970)
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else { return }
        _ = rename(temporary, path)
    }
}

/// What one scrub found and did.
public struct ScrubReport: Sendable {
    public var chunksChecked = 0
    public var bytesChecked: UInt64 = 0
    /// Chunks that did not hash to their id (or could not be read): flagged, then fetched again from peers.
    public var damaged: Set<ContentHash> = []
    /// Damaged chunks a peer provided again, by the peer's address.
    public var repaired: [ContentHash: String] = [:]
    /// Files with a chunk still missing after the repair.
    public var unrepairedFiles: [ContentHash] = []
}

extension Mirror {
    /// Scrubs if the schedule says it is time, then records when it finished.
    func scrubIfDue() async {
        guard scrubSchedule.isDue(at: clock()) else { return }
        do { _ = try await scrub() } catch {
            logger.warning("scrub failed", metadata: ["error": "\(error)"])
        }
        scrubSchedule.last = clock()
        scrubSchedule.save(to: policy.scrubStatePath)
    }

    /// Reads back every chunk the store holds (`ContentStore.verify`, on a thread of its own: it reads the whole
    /// store), and fetches every file with a damaged chunk again from the holders of a release that names it and the
    /// connected peers, into the packs. Logs each repair as `repaired chunk <id> from peer <host:port>`, and each
    /// file it could not repair.
    func scrub() async throws -> ScrubReport {
        let store = self.store
        logger.info("scrub started")
        let verify = try await Self.offThread { try store.verify() }
        var report = ScrubReport()
        report.chunksChecked = verify.chunksChecked
        report.bytesChecked = verify.bytesChecked
        report.damaged = Set(verify.problems.map(\.chunk))
        for problem in verify.problems {
            logger.warning(
                "scrub found damaged chunk \(problem.chunk)",
                metadata: ["pack": "\(problem.pack)", "offset": "\(problem.offset)", "error": "\(problem.message)"])
        }
        let incomplete = Set(verify.incompleteFiles)
        if !incomplete.isEmpty {
            let damaged = report.damaged
            let received = Mutex<[ContentHash: String]>([:])
            let fetcher = Fetcher(store: store, identity: identity, logger: logger)
            fetcher.onChunkReceived = { id, peer in
                guard damaged.contains(id) else { return }
                received.withLock { $0[id] = peer }
            }
            var named = Set<ContentHash>()
            for (id, _, _) in try catalog.allManifests() {
                guard let signed = try verified[id] ?? catalog.manifest(id: id) else { continue }
                verified[id] = signed
                let files = signed.manifest.files.filter { incomplete.contains($0.sha256) }
                if files.isEmpty { continue }
                named.formUnion(files.map(\.sha256))
                let peers = await peers(for: id)
                guard !peers.isEmpty else { continue }
                do {
                    try await ReleaseFetch(fetcher: fetcher).pullIntoStore(
                        signed.manifest, peers: peers, scratchDirectory: policy.scratchDirectory)
                } catch {
                    logger.warning(
                        "scrub could not repair \(signed.manifest.release)", metadata: ["error": "\(error)"])
                }
            }
            let intact = try store.holds(Array(damaged))
            for (id, peer) in received.withLock({ $0 }).sorted(by: { $0.key.hex < $1.key.hex })
            where intact.contains(id) {
                report.repaired[id] = peer
                logger.notice("repaired chunk \(id) from peer \(peer)")
            }
            for address in incomplete.sorted(by: { $0.hex < $1.hex }) {
                guard let availability = try store.availability(of: address), !availability.complete else { continue }
                report.unrepairedFiles.append(address)
                logger.warning(
                    "scrub could not repair file \(address)",
                    metadata: [
                        "why": named.contains(address)
                            ? "no peer provided its damaged chunks; the next scrub or replication round tries again"
                            : "no release this node knows names it; add the file again to repair it"
                    ])
            }
        }
        logger.info(
            "scrub finished",
            metadata: [
                "chunks": "\(report.chunksChecked)", "bytes": "\(report.bytesChecked)",
                "damaged": "\(report.damaged.count)", "repaired": "\(report.repaired.count)",
                "files.unrepaired": "\(report.unrepairedFiles.count)",
            ])
        return report
    }

    /// Runs `body` on a thread of its own, so a long synchronous job does not hold one of the few threads the
    /// concurrency runtime has.
    static func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
        }
    }
}
