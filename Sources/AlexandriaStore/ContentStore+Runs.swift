import AlexandriaCore

/// Where a run of a file's chunks is stored, looked up once, so that a long range can be read verified in pieces
/// (e.g. by a server that sends it segment by segment) without an index query per piece.
public struct ChunkRun: Sendable {
    public let recipe: FileRecipe
    /// The chunk indices of `recipe` this run covers.
    public let indices: Range<Int>
    let locations: [ContentStore.ChunkLocation]
}

/// The scratch space of one reading thread (record buffers and decoders for two chunks at a time). Reused across
/// reads so a server's memory does not grow with its connections; never used by two reads at once.
public final class ChunkReadScratch: @unchecked Sendable {
    let a: ReadContext
    let b: ReadContext
    /// The largest chunk it can decode: a chunk longer than this does not decode in it (and would read as damaged).
    public let maxChunk: Int

    public init(maxChunk: Int) {
        self.maxChunk = maxChunk
        a = ReadContext(maxChunk: maxChunk)
        b = ReadContext(maxChunk: maxChunk)
    }
}

extension ContentStore {
    /// Looks up where chunks `indices` of `recipe` are stored. Throws `missingChunk` when one is not held, or is
    /// held only as a copy known to be damaged.
    public func locate(_ recipe: FileRecipe, chunks indices: Range<Int>) throws(StoreError) -> ChunkRun {
        let locations = try withReader { (db) throws(StoreError) -> [ChunkLocation] in
            var out: [ChunkLocation] = []
            out.reserveCapacity(indices.count)
            for i in indices {
                let chunk = recipe.chunks[i]
                guard let loc = try location(of: chunk.id, in: db), loc.rawLength == Int(chunk.length) else {
                    throw StoreError(
                        .missingChunk,
                        "\(recipe.address) is incomplete here: chunk \(i) (\(chunk.id)) is missing or was found "
                            + "damaged; fetch the file again")
                }
                out.append(loc)
            }
            return out
        }
        return ChunkRun(recipe: recipe, indices: indices, locations: locations)
    }

    /// Reads chunks `chunks` (within `run.indices`) into `destination`, back to back in file order, and checks each
    /// against its id (two at a time on one core) before returning the number of bytes written. A chunk that fails
    /// is marked bad, so it reads as missing until a good copy replaces it, and is thrown as `corruptChunk`; the
    /// destination must then not be used. `destination` must hold the chunks' total length.
    public func readVerified(
        _ run: ChunkRun, chunks: Range<Int>, into destination: UnsafeMutableRawBufferPointer,
        scratch: ChunkReadScratch
    ) throws(StoreError) -> Int {
        precondition(chunks.lowerBound >= run.indices.lowerBound && chunks.upperBound <= run.indices.upperBound)
        var written = 0
        var i = chunks.lowerBound
        func slice(_ loc: ChunkLocation, at start: Int) throws(StoreError) -> UnsafeMutableRawBufferPointer {
            guard start + loc.rawLength <= destination.count else {
                throw StoreError(.rangeNotSatisfiable, "the destination is shorter than the chunks read into it")
            }
            return UnsafeMutableRawBufferPointer(rebasing: destination[start..<start + loc.rawLength])
        }
        while i < chunks.upperBound {
            let a = run.locations[i - run.indices.lowerBound]
            let da = try slice(a, at: written)
            if i + 1 < chunks.upperBound {
                let b = run.locations[i + 1 - run.indices.lowerBound]
                let db = try slice(b, at: written + a.rawLength)
                let (ea, eb) = readVerifiedPair(a, into: da, context: scratch.a, b, into: db, context: scratch.b)
                for (loc, error) in [(a, ea), (b, eb)] {
                    guard let error else { continue }
                    if error.code == .corruptChunk { markBad(loc.id) }
                    throw error
                }
                written += a.rawLength + b.rawLength
                i += 2
            } else {
                do throws(StoreError) { try readVerified(a, into: da, context: scratch.a) } catch {
                    if error.code == .corruptChunk { markBad(a.id) }
                    throw error
                }
                written += a.rawLength
                i += 1
            }
        }
        return written
    }
}
