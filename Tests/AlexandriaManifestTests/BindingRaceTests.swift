import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import AlexandriaStore
import Dispatch
import Foundation
import Testing

/// Two writers of one home (the CLI and the daemon each hold their own connection to catalog.sqlite) race
/// conflicting manifests for one release: exactly one becomes the first binding, the other becomes evidence.
@Suite("First binding under a race")
struct BindingRaceTests {
    @Test func twoConnectionsRacingConflictingManifestsBindExactlyOne() throws {
        let key = PublisherKey.generate()
        let a = try SignedManifest(manifest: try sampleManifest(key: key), key: key)
        let b = try SignedManifest(
            manifest: try sampleManifest(key: key, paths: ["model.safetensors", "config.json", "other.bin"]), key: key)
        var winners: [ContentHash: Int] = [:]
        for round in 0..<40 {
            let dir = FileManager.default.temporaryDirectory.path + "/alexandria-race-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let first = try Catalog(path: dir + "/catalog.sqlite")
            try first.register(publisherKey: key.publicKey)
            let second = try Catalog(path: dir + "/catalog.sqlite")
            let outcomes = OutcomeBox()
            let start = DispatchSemaphore(value: 0)
            let group = DispatchGroup()
            for (catalog, manifest) in [(first, round % 2 == 0 ? a : b), (second, round % 2 == 0 ? b : a)] {
                DispatchQueue.global().async(group: group) {
                    start.wait()
                    outcomes.append(Result { try catalog.addManifest(manifest.envelope) })
                }
            }
            start.signal()
            start.signal()
            group.wait()
            let results = outcomes.values.compactMap { try? $0.get() }
            #expect(results.count == 2, "round \(round): \(outcomes.values)")
            #expect(results.filter { $0 == .added }.count == 1, "round \(round): \(results)")
            #expect(results.contains { if case .equivocation = $0 { true } else { false } }, "round \(round)")
            let bound = try #require(try first.binding(publisher: key.id, release: "tiny@1.0"))
            #expect(try second.binding(publisher: key.id, release: "tiny@1.0") == bound)
            let loser = bound == a.id ? b.id : a.id
            #expect(try first.manifest(id: loser) == nil, "round \(round): the loser was stored as a manifest")
            #expect(try first.equivocations(publisher: key.id).count == 1)
            winners[bound, default: 0] += 1
        }
        #expect(winners.values.reduce(0, +) == 40)
    }
}

final class OutcomeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [Result<Catalog.Outcome, Error>] = []
    func append(_ r: Result<Catalog.Outcome, Error>) {
        lock.lock()
        stored.append(r)
        lock.unlock()
    }
    var values: [Result<Catalog.Outcome, Error>] {
        lock.lock()
        defer { lock.unlock() }
        return stored
    }
}

/// The log entry that binds a name arrives before the manifest it names (gossip sends log entries first): between
/// the two, the name is not found yet, never "contested" with no contender (seen once in the interop run).
@Suite("A binding without its manifest yet")
struct BindingBeforeManifestTests {
    @Test func aNameWhoseManifestHasNotArrivedIsNotFoundRatherThanContested() throws {
        let c = try TempCatalog()
        defer { try? FileManager.default.removeItem(atPath: c.dir) }
        try ContentStore.initialize(at: c.dir + "/store")
        let registry = Registry(store: try ContentStore(directory: c.dir + "/store"), catalog: c.catalog)
        let key = PublisherKey.generate()
        try c.catalog.register(publisherKey: key.publicKey)
        let manifest = try SignedManifest(manifest: try sampleManifest(key: key), key: key)
        let entry = try SignedLogEntry.sign(
            try LogEntry(publisher: key.id, index: 0, kind: .publish, release: "tiny@1.0", manifest: manifest.id),
            key: key)
        _ = try c.catalog.addLogEntry(entry.envelope)
        let reference = try Reference(parsing: "\(key.id)/tiny@1.0")
        do {
            _ = try registry.resolve(reference)
            Issue.record("resolved a release whose manifest is not here")
        } catch let error as ManifestError {
            #expect(error.code == .notFound)
            #expect("\(error)".contains("has not reached this node"), "\(error)")
        }
        // Once the manifest arrives, the name resolves to it.
        _ = try c.catalog.addManifest(manifest.envelope)
        #expect(try registry.resolve(reference).manifest.id == manifest.id)
    }
}
