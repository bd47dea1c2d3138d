import AlexandriaCore
import Testing

@Suite struct ContentHashTests {
    @Test func emptyIsSha256OfNothing() {
        #expect(
            ContentHash.empty.description == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(ContentHash.of([UInt8]()) == .empty)
    }

    @Test func canonicalParsingIsStrict() {
        let hex = String(repeating: "ab", count: 32)
        #expect(ContentHash(canonical: "sha256:" + hex)?.hex == hex)
        for bad in [
            hex, "sha256:" + hex.uppercased(), "SHA256:" + hex, "sha256:" + hex + "0", "sha256:" + hex.dropLast(),
            "sha256: " + hex.dropLast(), "sha256:" + hex.dropLast() + "g", "sha512:" + hex, "",
        ] {
            #expect(ContentHash(canonical: String(bad)) == nil, "\(bad)")
        }
    }

    @Test func userInputAcceptsBareHexAndAnyCase() {
        let hex = String(repeating: "c0", count: 32)
        let expected = ContentHash(canonical: "sha256:" + hex)
        #expect(ContentHash(userInput: hex) == expected)
        #expect(ContentHash(userInput: hex.uppercased()) == expected)
        #expect(ContentHash(userInput: "sha256:" + hex.uppercased()) == expected)
        #expect(ContentHash(userInput: "sha256:" + hex + " ") == nil)
        #expect(ContentHash(userInput: "../../etc/passwd") == nil)
    }

    @Test func bytesRoundTripAndOrder() {
        let a = ContentHash.of(Array("a".utf8))
        let b = ContentHash(bytes: a.bytes)
        #expect(a == b)
        #expect(ContentHash(bytes: [UInt8](repeating: 0, count: 31)) == nil)
        let zero = ContentHash(bytes: [UInt8](repeating: 0, count: 32))!
        let one = ContentHash(bytes: [UInt8](repeating: 0, count: 31) + [1])!
        #expect(zero < one)
    }

    @Test func recipeLayoutIsChecked() {
        let p = ChunkerParameters.v1
        let id = ContentHash.empty
        let good = FileRecipe(
            address: id, size: 30, chunker: p,
            chunks: [ChunkRef(id: id, offset: 0, length: 10), ChunkRef(id: id, offset: 10, length: 20)])
        #expect(throws: Never.self) { try good.validateLayout() }
        let gap = FileRecipe(
            address: id, size: 30, chunker: p,
            chunks: [ChunkRef(id: id, offset: 0, length: 10), ChunkRef(id: id, offset: 11, length: 19)])
        #expect(throws: CoreError(.malformedRecipe, "")) { try gap.validateLayout() }
        let short = FileRecipe(address: id, size: 31, chunker: p, chunks: good.chunks)
        #expect(throws: CoreError(.malformedRecipe, "")) { try short.validateLayout() }
        let huge = FileRecipe(
            address: id, size: UInt64(p.maxSize + 1), chunker: p,
            chunks: [ChunkRef(id: id, offset: 0, length: UInt32(p.maxSize + 1))])
        #expect(throws: CoreError(.malformedRecipe, "")) { try huge.validateLayout() }
        #expect(good.chunkIndices(covering: 0..<1) == 0..<1)
        #expect(good.chunkIndices(covering: 9..<11) == 0..<2)
        #expect(good.chunkIndices(covering: 10..<30) == 1..<2)
        #expect(good.chunkIndices(covering: 5..<5) == 0..<0)
    }
}
