import AlexandriaCore
import AlexandriaPeer
import AlexandriaStore
import Crypto
import Foundation
import Logging
import Testing

/// A fetch killed at any point around its rename and registration: the complete output is taken as it is (re-linked,
/// never downloaded again) and `verify` does not report it damaged.
@Suite("Fetch rename and registration survive kill -9")
struct FetchRecoveryTests {
    /// The state a fetch leaves after it verified and wrote every chunk into its partial file and linked them there.
    struct Scene {
        let directory: String
        let store: ContentStore
        let fetcher: Fetcher
        let data: [UInt8]
        let address: ContentHash
        let recipe: FileRecipe
        var final: String { directory + "/out.bin" }
        var partial: String { final + Fetcher.partialSuffix }

        init() throws {
            directory = FileManager.default.temporaryDirectory.path + "/alexandria-fetchkill-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            data = (0..<(3 << 20)).map { _ in
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            }
            // The recipe a peer would send: what another store makes of the same bytes.
            try ContentStore.initialize(at: directory + "/source")
            let source = try ContentStore(directory: directory + "/source")
            try Data(data).write(to: URL(fileURLWithPath: directory + "/source.bin"))
            address = try source.add(path: directory + "/source.bin").address
            recipe = try #require(try source.recipe(of: address))
            try ContentStore.initialize(at: directory + "/store")
            store = try ContentStore(directory: directory + "/store")
            fetcher = Fetcher(
                store: store, identity: NodeIdentity(key: Curve25519.Signing.PrivateKey()),
                logger: Logger(label: "test.fetch"))
            try Data(data).write(to: URL(fileURLWithPath: directory + "/out.bin" + Fetcher.partialSuffix))
            try store.link(
                recipe.chunks.map { LinkedChunk(id: $0.id, offset: $0.offset, length: Int($0.length)) },
                inFile: partial)
        }

        func cleanUp() { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test func killedAfterRegistrationBeforeRenameTheNextFetchDownloadsNothing() async throws {
        let s = try Scene()
        defer { s.cleanUp() }
        try s.store.registerFile(s.recipe)
        // No peers at all: everything must come from the partial file, checked in place.
        let report = try await s.fetcher.fetch(s.address, to: s.final, peers: [])
        #expect(report.bytesDownloaded == 0)
        #expect(FileManager.default.contents(atPath: s.final) == Data(s.data))
        #expect(!FileManager.default.fileExists(atPath: s.partial))
        let verified = try s.store.verify()
        #expect(verified.isClean, "\(verified.problems.prefix(2)) \(verified.incompleteFiles)")
    }

    @Test func killedAfterRenameBeforeRelinkVerifyAndFetchTakeTheFileAsItIs() async throws {
        let s = try Scene()
        defer { s.cleanUp() }
        try s.store.registerFile(s.recipe)
        #expect(rename(s.partial, s.final) == 0)
        // What verify runs first: the links follow the rename, so nothing reads as damaged.
        #expect(try Fetcher.recoverInterruptedFetches(s.store) == 1)
        let report = try s.store.verify()
        #expect(report.isClean && report.chunksChecked == Set(s.recipe.chunks.map(\.id)).count)
        let again = try await s.fetcher.fetch(s.address, to: s.final, peers: [])
        #expect(again.bytesDownloaded == 0)
        #expect(FileManager.default.contents(atPath: s.final) == Data(s.data))
    }

    @Test func aRenamedFileWithOtherBytesReadsAsMissingNeverWrong() throws {
        let s = try Scene()
        defer { s.cleanUp() }
        try s.store.registerFile(s.recipe)
        #expect(rename(s.partial, s.final) == 0)
        var other = s.data
        other[100] ^= 1
        try Data(other).write(to: URL(fileURLWithPath: s.final))
        #expect(try Fetcher.recoverInterruptedFetches(s.store) == 1)
        let report = try s.store.verify()
        #expect(report.incompleteFiles == [s.address])
        #expect(throws: StoreError.self) { try s.store.read(s.address) { _ in } }
    }
}
