import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import Foundation
import Testing

@Suite("Publisher logs, checkpoints and equivocation")
struct LogTests {
    let key = PublisherKey.generate()

    func entry(
        _ index: Int, _ kind: LogEntry.Kind, release: String = "tiny@1.0", manifest: ContentHash = .empty,
        reason: String? = nil, signer: PublisherKey? = nil, newKey: PublisherKey? = nil
    ) throws -> DSSEEnvelope {
        let e = try LogEntry(
            publisher: key.id, index: index, kind: kind, release: kind == .rotateKey ? nil : release,
            manifest: kind == .rotateKey ? nil : manifest, reason: reason,
            newKey: newKey.map { Array($0.publicKey.derRepresentation) })
        return try SignedLogEntry.sign(e, key: signer ?? key, newKey: newKey).envelope
    }

    @Test func appendsInOrderAndRefusesGapsAndRepeats() throws {
        var log = PublisherLog(publisherKey: key.publicKey)
        try log.append(try entry(0, .publish))
        #expect(throws: ManifestError(.logInconsistent, "")) {
            try log.append(try entry(2, .publish, release: "tiny@2"))
        }
        #expect(throws: ManifestError(.logInconsistent, "")) {
            try log.append(try entry(0, .publish, release: "tiny@2"))
        }
        #expect(throws: ManifestError(.equivocation, "")) {
            try log.append(try entry(1, .publish, manifest: ContentHash.of([1])))
        }
        #expect(throws: ManifestError(.logInconsistent, "")) {
            try log.append(try entry(1, .yank, release: "nope@1", reason: "x"))
        }
        try log.append(try entry(1, .yank, reason: "broken"))
        #expect(log.releases["tiny@1.0"]?.yanked?.reason == "broken")
        #expect(log.latest(name: "tiny") == nil)
    }

    @Test func latestSkipsYankedAndSaysWhy() throws {
        var log = PublisherLog(publisherKey: key.publicKey)
        try log.append(try entry(0, .publish, release: "m@1", manifest: ContentHash.of([1])))
        try log.append(try entry(1, .publish, release: "m@2", manifest: ContentHash.of([2])))
        try log.append(try entry(2, .yank, release: "m@2", manifest: ContentHash.of([2]), reason: "regression"))
        let (latest, skipped) = try #require(log.latest(name: "m"))
        #expect(latest.release == "m@1" && skipped.map(\.release) == ["m@2"])
        try log.append(try entry(3, .unyank, release: "m@2", manifest: ContentHash.of([2])))
        #expect(log.latest(name: "m")?.release.release == "m@2")
    }

    @Test func rotationNeedsBothKeysAndHandsOver() throws {
        let next = PublisherKey.generate()
        var log = PublisherLog(publisherKey: key.publicKey)
        try log.append(try entry(0, .publish))
        // Signed by the old key only: refused.
        let half = try DSSEEnvelope.sign(
            payloadType: LogEntry.payloadType,
            payload: try LogEntry(
                publisher: key.id, index: 1, kind: .rotateKey, newKey: Array(next.publicKey.derRepresentation)
            ).payload,
            key: key)
        #expect(throws: ManifestError(.badSignature, "")) { try log.append(half) }
        try log.append(try entry(1, .rotateKey, newKey: next))
        #expect(throws: ManifestError(.badSignature, "")) { try log.append(try entry(2, .publish, release: "tiny@2")) }
        try log.append(try entry(2, .publish, release: "tiny@2", signer: next))
        #expect(log.size == 3)
    }

    /// A manifest signed by a rotated key is built only through the log, which checks the signature: a stranger's
    /// signature, or the old key's after the rotation, is refused.
    @Test func aRotatedKeysManifestIsVerifiedAgainstTheLog() throws {
        let next = PublisherKey.generate()
        let stranger = PublisherKey.generate()
        var log = PublisherLog(publisherKey: key.publicKey)
        try log.append(try entry(0, .publish))
        try log.append(try entry(1, .rotateKey, newKey: next))
        let statement = try sampleManifest(key: key, version: "2.0", logIndex: 2)
        func envelope(_ k: PublisherKey) throws -> DSSEEnvelope {
            try DSSEEnvelope.sign(payloadType: Manifest.payloadType, payload: statement.payload, key: k)
        }
        #expect(try SignedManifest(envelope: envelope(next), log: log).manifest == statement)
        #expect(throws: ManifestError(.badSignature, "")) { try SignedManifest(envelope: envelope(stranger), log: log) }
        #expect(throws: ManifestError(.badSignature, "")) { try SignedManifest(envelope: envelope(key), log: log) }
        let other = PublisherLog(publisherKey: stranger.publicKey)
        #expect(throws: ManifestError(.unknownKey, "")) { try SignedManifest(envelope: envelope(next), log: other) }
    }

    @Test func checkpointsVerifyAndTamperingFails() throws {
        var log = PublisherLog(publisherKey: key.publicKey)
        try log.append(try entry(0, .publish))
        let note = try log.checkpoint(signedWith: key)
        let parsed = try SignedNote(parsing: note.serialized)
        let (checkpoint, matches) = try log.verify(parsed)
        #expect(checkpoint.size == 1 && matches == true)
        #expect(note.serialized.hasPrefix("alexandria.dev/publisher/\(key.id)\n1\n"))
        var text = note.serialized
        text = text.replacingOccurrences(of: "\n1\n", with: "\n2\n")
        #expect(throws: ManifestError.self) { try log.verify(try SignedNote(parsing: text)) }
        let stranger = PublisherKey.generate()
        #expect(throws: ManifestError.self) {
            try log.verify(try Checkpoint(publisher: key.id, size: 1, root: log.root).sign(with: stranger))
        }
    }

    @Test func catalogKeepsTheFirstBindingAndStoresTheProof() throws {
        let dir = FileManager.default.temporaryDirectory.path + "/alexandria-catalog-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let catalog = try Catalog(path: dir + "/catalog.sqlite")
        try catalog.register(publisherKey: key.publicKey)
        let first = try SignedManifest(manifest: try sampleManifest(key: key), key: key)
        var log = PublisherLog(publisherKey: key.publicKey)
        let publish = try entry(0, .publish, manifest: first.id)
        try log.append(publish)
        try catalog.commit(entry: publish, manifest: first.envelope, checkpoint: try log.checkpoint(signedWith: key))
        // The same release, other bytes, validly signed: an overwrite attempt.
        let second = try SignedManifest(
            manifest: try sampleManifest(key: key, paths: ["model.safetensors", "config.json", "evil.bin"]), key: key)
        guard case .equivocation(let proofID) = try catalog.addManifest(second.envelope) else {
            Issue.record("the conflicting manifest was not recognised as an overwrite attempt")
            return
        }
        #expect(try catalog.binding(publisher: key.id, release: "tiny@1.0") == first.id)
        let proofs = try catalog.equivocations(publisher: key.id)
        #expect(proofs.count == 1 && proofs[0].proof.id == proofID)
        // The proof is self-contained: it verifies from its JSON alone.
        let finding = try EquivocationProof(json: proofs[0].proof.json).verify()
        #expect(Set([finding.firstID, finding.secondID]) == Set([first.id, second.id]))
        // A checkpoint that rolls back is refused; one by an unknown key too.
        try log.append(try entry(1, .yank, manifest: first.id, reason: "x"))
        try catalog.addLogEntry(try entry(1, .yank, manifest: first.id, reason: "x"))
        #expect(try catalog.addCheckpoint(try log.checkpoint(signedWith: key)) == .added)
        let old = try Checkpoint(publisher: key.id, size: 1, root: MerkleTree.root(log.leaves.prefix(1))).sign(
            with: key)
        #expect(try catalog.addCheckpoint(old) == .duplicate)
        let forkedRoot = try Checkpoint(publisher: key.id, size: 1, root: ContentHash.of([9])).sign(with: key)
        guard case .equivocation = try catalog.addCheckpoint(forkedRoot) else {
            Issue.record("two checkpoints of one size with different roots were not caught")
            return
        }
        #expect(throws: ManifestError.self) {
            try catalog.addCheckpoint(
                try Checkpoint(publisher: key.id, size: 2, root: log.root).sign(with: PublisherKey.generate()))
        }
        // A forked log entry (same index, other content) is an equivocation too.
        guard case .equivocation = try catalog.addLogEntry(try entry(1, .deprecate, manifest: first.id, reason: "y"))
        else {
            Issue.record("a forked log entry was not caught")
            return
        }
    }
}
