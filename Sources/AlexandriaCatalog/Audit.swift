import AlexandriaCore
import AlexandriaManifest
import AlexandriaStore
import Crypto
import Dispatch
import Foundation

/// Everything `audit` checked about one manifest, as plain values. Rendering is the CLI's job.
public struct AuditReport: Sendable, Encodable {
    public struct FileCheck: Sendable, Encodable {
        public let path: String
        public let sha256: String
        public let size: UInt64
        /// The store holds a file with this address.
        public let present: Bool
        /// Whether this audit needed the file here: false with --offline, which checks a release this node need not
        /// hold, so an absent file is reported (`present` false) but is not a failure.
        public let contentRequired: Bool
        /// Size, chunk count and Merkle root in the store match the manifest (false when the file is absent).
        public let metadataMatches: Bool
        /// Every chunk and the whole file hashed again (nil with --offline).
        public let contentVerified: Bool?
        public let problem: String?
    }

    public struct LogCheck: Sendable, Encodable {
        /// The publish entry at the manifest's log index names this manifest.
        public let included: Bool
        public let logIndex: Int
        public let logSize: Int
        public let checkpoints: [Int]
        /// The inclusion proof of the publish entry verifies against the largest checkpoint.
        public let inclusionProofVerified: Bool
        /// Every pair of known checkpoints is consistent (RFC 9162 consistency proofs).
        public let checkpointsConsistent: Bool
        public let problems: [String]
    }

    public struct Notice: Sendable, Encodable {
        public let index: Int
        public let kind: String
        public let time: String
        public let reason: String?
        public let sunset: String?
        public let successor: String?
        public let severity: String?
    }

    public struct Overwrite: Sendable, Encodable {
        public let subject: String
        public let first: String
        public let second: String
    }

    public struct Parent: Sendable, Encodable {
        public let manifest: String
        public let relation: String
        public let report: AuditReport?
        public let problem: String?

        /// The hop holds: the parent is known here and its own audit passes. A withdrawn parent (exit 9) is a fact
        /// about the parent, not a break in the lineage.
        public var holds: Bool { (report?.exitCode).map { $0 == 0 || $0 == 9 } ?? false }
    }

    public let manifestID: String
    public let release: String
    public let publisher: String
    public let signatureValid: Bool
    public let signedBy: String
    public let files: [FileCheck]
    public let log: LogCheck
    public let yanked: Notice?
    public let notices: [Notice]
    public let overwriteAttempts: [Overwrite]
    public let lineage: [Parent]
    /// Nodes that cosigned a checkpoint of the publisher's log that includes this release:
    /// `ed25519:<key> trusted|untrusted (checkpoint size N, claims <ISO time>)`. The time is what the witness wrote;
    /// nothing checks it and nothing depends on it.
    public let witnesses: [String]
    /// The witnesses in the node's `[trust]` policy among them (`ed25519:<key>`), and the others.
    public let trustedWitnesses: [String]
    public let untrustedWitnesses: [String]
    /// `[trust]` quorum (0: no policy, first-seen).
    public let quorum: Int
    /// How the name was settled when the publisher signed more than one manifest for it (see `ForkChoice.Reason`);
    /// nil without a conflict.
    public let settlement: String?
    /// Trusted witnesses that cosigned both sides of a conflict.
    public let doubleSigners: [String]
    /// With a conflict, every contender: `sha256:<id> stands|does not stand; witnesses: ed25519:<key> trusted, …`.
    public let contenders: [String]
    /// Nodes whose newest availability statement says they hold every chunk of the release.
    public let holders: [String]
    public let resolution: [String]
    /// The size at which a compromise notice this node holds froze the publisher's log (the smallest), or nil.
    public let frozenAt: Int?
    /// The release's publish entry is at or past `frozenAt`: signed after the key was reported compromised, so
    /// possibly by a thief. Audit fails with exit 10.
    public var afterCompromise: Bool { frozenAt.map { log.logIndex >= $0 } ?? false }
    /// Notices whose root disagrees with this node's log at their size (a fork before the freeze).
    public let compromiseForks: [String]

    /// 0 when everything holds; else the most serious failure: 4 bad signature, 10 published at or after the size
    /// its publisher's compromise notice froze the log at, 6 equivocation, 5 missing or corrupt content, 7 broken
    /// lineage, 1 any other check (log inclusion or consistency, a compromise notice that disagrees with the log);
    /// and when every check holds, 9 if the publisher withdrew the release (`isWithdrawn`).
    public var exitCode: Int32 {
        if !signatureValid { return 4 }
        if afterCompromise { return 10 }
        if !overwriteAttempts.isEmpty { return 6 }
        if files.contains(where: {
            $0.present ? !$0.metadataMatches || $0.contentVerified == false : $0.contentRequired
        }) {
            return 5
        }
        if lineage.contains(where: { !$0.holds }) { return 7 }
        if !log.included || !log.inclusionProofVerified || !log.checkpointsConsistent || !compromiseForks.isEmpty {
            return 1
        }
        if isWithdrawn { return 9 }
        return 0
    }

    /// The release checks out, but its publisher says not to use it: it is yanked, or carries an advisory of high
    /// or critical severity.
    public var isWithdrawn: Bool {
        yanked != nil
            || notices.contains { $0.kind == "advisory" && ($0.severity == "high" || $0.severity == "critical") }
    }
}

extension Registry {
    /// Audits a resolved manifest: signature, files against the local store (all bytes re-hashed unless `offline`),
    /// log inclusion and checkpoint consistency, notices, overwrite attempts, and lineage walked to its roots, each
    /// parent checked the same way.
    public func audit(_ resolved: Resolved, offline: Bool, progress: ((UInt64) -> Void)? = nil) throws -> AuditReport {
        var visited = Set<ContentHash>()
        return try audit(
            resolved.manifest, log: resolved.log, offline: offline, notes: resolved.notes, depth: 0,
            visited: &visited, progress: progress)
    }

    static let maxLineageDepth = 32

    func audit(
        _ signed: SignedManifest, log: PublisherLog, offline: Bool, notes: [String], depth: Int,
        visited: inout Set<ContentHash>, progress: ((UInt64) -> Void)?
    ) throws -> AuditReport {
        visited.insert(signed.id)
        let manifest = signed.manifest
        let signer = log.keys.map(\.key).first { signed.envelope.isSigned(by: $0) }
        let signatureValid = signer != nil
        // Files: metadata against the store, then (unless offline) every byte re-hashed, two files at a time.
        var metadata: [(present: Bool, matches: Bool, problem: String?)] = []
        for file in manifest.files {
            if let recipe = try store.recipe(of: file.sha256) {
                let matches =
                    recipe.size == file.size && recipe.chunks.count == file.chunks
                    && recipe.merkleRoot == file.merkleRoot
                metadata.append((true, matches, matches ? nil : "the stored file's size, chunks or Merkle root differ"))
            } else {
                metadata.append(
                    (
                        false, false,
                        offline
                            ? "not in the local store (not needed with --offline; its content was not checked)"
                            : "not in the local store (fetch it, or audit with --offline)"
                    ))
            }
        }
        let content = ContentResults(count: manifest.files.count)
        if !offline {
            let counter = ProgressCounter(progress)
            let store = self.store
            let files = manifest.files
            let present = metadata.map(\.present)
            DispatchQueue.concurrentPerform(iterations: files.count) { i in
                guard present[i] else { return }
                let outcome: String?
                do { outcome = try store.verifyContent(of: files[i].sha256) { counter.add($0) } } catch {
                    outcome = "\(error)"
                }
                content.set(i, outcome)
            }
        }
        var files: [AuditReport.FileCheck] = []
        for (i, file) in manifest.files.enumerated() {
            let outcome = content.get(i)
            files.append(
                .init(
                    path: file.path, sha256: file.sha256.description, size: file.size, present: metadata[i].present,
                    contentRequired: !offline, metadataMatches: metadata[i].matches,
                    contentVerified: offline || !metadata[i].present ? nil : outcome == nil,
                    problem: metadata[i].problem ?? outcome))
        }
        // Log.
        var logProblems: [String] = []
        let included =
            manifest.logIndex < log.size && log.entries[manifest.logIndex].entry.kind == .publish
            && log.entries[manifest.logIndex].entry.manifest == signed.id
            && log.entries[manifest.logIndex].entry.release == manifest.release.local
        if !included {
            logProblems.append("the log has no publish entry for this manifest at index \(manifest.logIndex)")
        }
        let checkpoints = try catalog.checkpoints(manifest.publisher).map(\.checkpoint)
        var inclusion = false
        if let largest = checkpoints.last, included, largest.size > manifest.logIndex, largest.size <= log.size {
            let leaves = Array(log.leaves.prefix(largest.size))
            if let proof = MerkleTree.inclusionProof(index: manifest.logIndex, leaves: leaves) {
                inclusion = MerkleTree.verifyInclusion(
                    leaf: log.leaves[manifest.logIndex], index: manifest.logIndex, treeSize: largest.size, proof: proof,
                    root: largest.root)
            }
        }
        if !inclusion { logProblems.append("no checkpoint proves the publish entry's inclusion") }
        var consistent = true
        for (a, b) in zip(checkpoints, checkpoints.dropFirst()) {
            guard b.size <= log.size,
                let proof = MerkleTree.consistencyProof(oldSize: a.size, leaves: Array(log.leaves.prefix(b.size))),
                MerkleTree.verifyConsistency(
                    oldSize: a.size, oldRoot: a.root, newSize: b.size, newRoot: b.root, proof: proof)
            else {
                consistent = false
                logProblems.append("checkpoints \(a.size) and \(b.size) are not consistent")
                continue
            }
        }
        // Notices and overwrite attempts.
        let status = log.releases[manifest.release.local]
        func notice(_ n: ReleaseStatus.Notice) -> AuditReport.Notice {
            .init(
                index: n.index, kind: n.kind.rawValue, time: n.time, reason: n.reason, sunset: n.sunset,
                successor: n.successor, severity: n.severity?.rawValue)
        }
        let overwrites = try catalog.equivocations(publisher: manifest.publisher)
            .filter { $0.finding.subject == manifest.release.description || !$0.finding.subject.contains("@") }
            .map {
                AuditReport.Overwrite(
                    subject: $0.finding.subject, first: $0.finding.firstID.description,
                    second: $0.finding.secondID.description)
            }
        let trust = catalog.trust
        let witnesses = try catalog.witnesses(of: signed)
        let settlement =
            overwrites.contains { $0.subject == manifest.release.description }
            ? try catalog.settlement(publisher: manifest.publisher, release: manifest.release.local) : nil
        // Lineage.
        var parents: [AuditReport.Parent] = []
        for parent in manifest.lineage {
            if visited.contains(parent.manifest) {
                parents.append(
                    .init(
                        manifest: parent.manifest.description, relation: parent.relation.rawValue,
                        report: nil, problem: "lineage loops back to \(parent.manifest)"))
                continue
            }
            guard depth < Self.maxLineageDepth else {
                parents.append(
                    .init(
                        manifest: parent.manifest.description, relation: parent.relation.rawValue,
                        report: nil, problem: "lineage deeper than \(Self.maxLineageDepth)"))
                continue
            }
            guard let p = try catalog.manifest(id: parent.manifest), let plog = try catalog.log(p.manifest.publisher)
            else {
                parents.append(
                    .init(
                        manifest: parent.manifest.description, relation: parent.relation.rawValue,
                        report: nil, problem: "the parent manifest is not known here"))
                continue
            }
            let report = try audit(
                p, log: plog, offline: offline, notes: [], depth: depth + 1, visited: &visited,
                progress: nil)
            parents.append(
                .init(
                    manifest: parent.manifest.description, relation: parent.relation.rawValue,
                    report: report, problem: nil))
        }
        return AuditReport(
            manifestID: signed.id.description, release: manifest.release.description,
            publisher: manifest.publisher.description, signatureValid: signatureValid,
            signedBy: signer.map { PublisherID(publicKey: $0).short } ?? "unknown key", files: files,
            log: .init(
                included: included, logIndex: manifest.logIndex, logSize: log.size,
                checkpoints: checkpoints.map(\.size),
                inclusionProofVerified: inclusion, checkpointsConsistent: consistent, problems: logProblems),
            yanked: status?.yanked.map(notice), notices: status?.notices.map(notice) ?? [],
            overwriteAttempts: overwrites, lineage: parents,
            witnesses: witnesses.map {
                Ed25519Strict.describe($0.witness) + (trust.trusts($0.witness) ? " trusted" : " untrusted")
                    + " (checkpoint size \($0.size), claims "
                    + "\(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0.timestamp)))))"
            },
            trustedWitnesses: witnesses.map(\.witness).filter(trust.trusts).map(Ed25519Strict.describe),
            untrustedWitnesses: witnesses.map(\.witness).filter { !trust.trusts($0) }.map(Ed25519Strict.describe),
            quorum: trust.quorum, settlement: settlement?.decision.reason.rawValue,
            doubleSigners: settlement?.decision.doubleSigners.map(Ed25519Strict.describe) ?? [],
            contenders: (settlement?.contenders ?? []).map { c in
                let w = c.witnesses.map { Ed25519Strict.describe($0) + (trust.trusts($0) ? " trusted" : " untrusted") }
                return "\(c.id) \(c.id == settlement?.decision.winner ? "stands" : "does not stand"); witnesses: "
                    + (w.isEmpty ? "none" : w.joined(separator: ", "))
            },
            holders: try catalog.holders(of: signed.id).map { "ed25519:\(Hex.encode($0.prefix(8)))" },
            resolution: notes, frozenAt: try catalog.frozenSize(manifest.publisher),
            compromiseForks: try catalog.compromiseForks(manifest.publisher))
    }
}

/// Per-file outcomes written from worker threads.
final class ContentResults: @unchecked Sendable {
    private var outcomes: [String?]
    private let lock = NSLock()
    init(count: Int) { outcomes = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: String?) { lock.withLock { outcomes[i] = value } }
    func get(_ i: Int) -> String? { lock.withLock { outcomes[i] } }
}

/// Adds up bytes from worker threads and reports the total on the caller's progress closure.
final class ProgressCounter: @unchecked Sendable {
    private var total: UInt64 = 0
    private let lock = NSLock()
    private let report: ((UInt64) -> Void)?
    init(_ report: ((UInt64) -> Void)?) { self.report = report }
    /// Reports under the lock: the caller's closure (a terminal progress bar) need not be thread-safe.
    func add(_ n: Int) {
        lock.withLock {
            total += UInt64(n)
            report?(total)
        }
    }
}
