import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The offline audits behind the release pages (`PageRoutes.releasePage`): one per manifest, reused while nothing it
/// read has changed, and computed within a share of one core.
///
/// Why: an audit checks the release's signature, log inclusion, every pair of checkpoints, its witnesses, and the same
/// again for each lineage hop. A page view is one unauthenticated request, so without this any client could keep the
/// node's cores busy by reloading a page with a long lineage or by walking the catalog. A kept audit is shown again
/// while its `Inputs` are equal: the catalog's counts for every publisher in the lineage (`Catalog.auditInputs`), the
/// lineage parents it could not find, the resolution notes, the release's holders and the Merkle roots its files have
/// in the store. A change to any of them (a yank, a checkpoint, a cosignature, an overwrite proof, a compromise
/// notice, a new holder, a file fetched) makes the next view audit again. New audits are admitted by a `WorkBudget`
/// charged with the thread CPU time each took; past it a view is refused (`busy`) until the budget refills. At most
/// `capacity` audits are kept; the least recently shown goes first.
final class AuditCache: Sendable {
    struct Inputs: Equatable, Sendable {
        let catalog: AuditInputs
        let notes: [String]
        let holders: [[UInt8]]
        let roots: [ContentHash?]
    }

    struct Entry: Sendable {
        /// The inputs taken before the audit ran (a change during it shows as a difference at the next view).
        let inputs: Inputs
        /// The publishers and unfound parents whose inputs the next view takes: those of this audit's lineage.
        let publishers: Set<PublisherID>
        let unfound: Set<ContentHash>
        let report: AuditReport
        var lastShown: UInt64
    }

    enum Outcome: Sendable {
        case kept(AuditReport)
        case computed(AuditReport, cpuSeconds: Double)
        case busy(retryAfterSeconds: Double)
    }

    /// An audit is kept per manifest and resolution: a name that resolved through `latest` carries notes that a view
    /// of the same manifest by id does not, so alternating the two must not make each view audit again.
    struct Key: Hashable, Sendable {
        let manifest: ContentHash
        let notes: [String]
    }

    struct State: Sendable {
        var entries: [Key: Entry] = [:]
        var budget: WorkBudget
        var tick: UInt64 = 0
        var computed = 0
    }

    let capacity: Int
    let clock: @Sendable () -> Double
    private let state: Mutex<State>

    /// `share` of one core for new audits, `burstSeconds` of CPU at once; `clock` in monotonic seconds.
    init(
        share: Double = PageLimits.auditShare, burstSeconds: Double = PageLimits.auditBurstSeconds,
        capacity: Int = PageLimits.keptAudits,
        clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    ) {
        self.capacity = max(1, capacity)
        self.clock = clock
        state = Mutex(State(budget: WorkBudget(share: share, burstSeconds: burstSeconds, now: clock())))
    }

    /// Audits computed so far (not counting kept ones shown again).
    var computedCount: Int { state.withLock { $0.computed } }

    /// The audit to show for `resolved`: the kept one if its inputs are unchanged, else a new one if the budget admits
    /// it, else `busy`.
    ///
    /// The inputs are taken before the audit runs, so a change committed during it shows as a difference at the next
    /// view. Which publishers and parents they cover comes from the lineage of the previous audit; the first audit of
    /// a release whose lineage reaches other publishers (or parents not found here) therefore runs once more with
    /// the inputs of those taken first.
    func report(for resolved: Resolved, registry: Registry) throws -> Outcome {
        let id = Key(manifest: resolved.manifest.id, notes: resolved.notes)
        let previous = state.withLock { $0.entries[id] }
        var scope = previous.map { ($0.publishers, $0.unfound) } ?? ([resolved.manifest.manifest.publisher], [])
        var inputs = try Self.inputs(resolved, publishers: scope.0, unfound: scope.1, registry: registry)
        if let previous, previous.inputs == inputs {
            return state.withLock {
                $0.tick += 1
                $0.entries[id]?.lastShown = $0.tick
                return .kept(previous.report)
            }
        }
        var spent = 0.0
        for pass in 0..<2 {
            let wait = state.withLock { s -> Double? in
                let now = clock()
                return s.budget.admits(now: now) ? nil : s.budget.retryAfter(now: now)
            }
            if let wait { return .busy(retryAfterSeconds: wait) }
            let started = Self.threadCPUSeconds()
            let report: AuditReport
            do {
                defer {
                    let took = Self.threadCPUSeconds() - started
                    spent += took
                    state.withLock { $0.budget.charge(took, now: clock()) }
                }
                report = try registry.audit(resolved, offline: true)
            }
            var lineage: (publishers: Set<PublisherID>, unfound: Set<ContentHash>) = ([], [])
            Self.collect(report, into: &lineage)
            if pass == 0, lineage.publishers != scope.0 || lineage.unfound != scope.1 {
                scope = (lineage.publishers, lineage.unfound)
                inputs = try Self.inputs(resolved, publishers: scope.0, unfound: scope.1, registry: registry)
                continue
            }
            state.withLock { s in
                s.computed += 1
                s.tick += 1
                s.entries[id] = Entry(
                    inputs: inputs, publishers: lineage.publishers, unfound: lineage.unfound, report: report,
                    lastShown: s.tick)
                if s.entries.count > capacity,
                    let oldest = s.entries.min(by: { $0.value.lastShown < $1.value.lastShown })
                {
                    s.entries[oldest.key] = nil
                }
            }
            return .computed(report, cpuSeconds: spent)
        }
        preconditionFailure("the second pass always returns")
    }

    static func inputs(
        _ resolved: Resolved, publishers: Set<PublisherID>, unfound: Set<ContentHash>, registry: Registry
    ) throws -> Inputs {
        let m = resolved.manifest.manifest
        return Inputs(
            catalog: try registry.catalog.auditInputs(publishers: publishers, manifests: unfound),
            notes: resolved.notes,
            holders: try registry.catalog.holders(of: resolved.manifest.id),
            roots: try m.files.map { try registry.store.merkleRoot(of: $0.sha256) })
    }

    /// The publishers of a report and of every report in its lineage, and the parents it could not audit.
    static func collect(
        _ report: AuditReport, into out: inout (publishers: Set<PublisherID>, unfound: Set<ContentHash>)
    ) {
        if let p = PublisherID(hex: report.publisher) { out.publishers.insert(p) }
        for parent in report.lineage {
            if let r = parent.report {
                collect(r, into: &out)
            } else if let id = ContentHash(canonical: parent.manifest) {
                out.unfound.insert(id)
            }
        }
    }

    /// CPU time of the calling thread (an offline audit runs on one thread).
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}
