/// How a chunk's bytes are stored in a pack record. Reads always return, and hash, the original bytes.
///
/// - `raw` (0): the bytes as they are.
/// - `zstd` (1): one zstd frame (with its content size) of the bytes.
/// - `byteGrouped` (2): the bytes split into two streams, even positions then odd positions, each stored raw or as
///   a zstd frame. Little-endian 16-bit floats (bf16, fp16) put the sign and exponent in the odd bytes, which then
///   compress far better than the interleaved data, and the near-random mantissa bytes are left raw (ZipNN's idea).
///   Payload: `flags u8` (bit 0: even stream is zstd, bit 1: odd stream is zstd), `even stored length u32 BE`,
///   the even stream, the odd stream. The even stream holds `(n + 1) / 2` bytes, the odd `n / 2`.
public enum ChunkCodec: UInt8, Sendable, CaseIterable {
    case raw = 0
    case zstd = 1
    case byteGrouped = 2
}

/// Encodes and decodes chunk payloads, with reusable zstd contexts and scratch buffers. One per thread.
final class ChunkCoder {
    /// A compressed form is kept only if it saves at least 1/16 (6.25 %) of the chunk: below that the CPU spent
    /// decompressing on every read costs more than the disk it saves.
    static let minimumSavingDivisor = 16
    /// A stream of a byte-grouped chunk is compressed only if it shrinks to 7/8 or less.
    static let streamKeepNumerator = 7

    private let compressor: ZstdCompressor
    private let decompressor = ZstdDecompressor()
    private var scratchA: UnsafeMutableRawBufferPointer
    private var scratchB: UnsafeMutableRawBufferPointer
    private var scratchC: UnsafeMutableRawBufferPointer

    init(level: Int32 = 1, maxChunk: Int) {
        compressor = ZstdCompressor(level: level)
        let size = maxChunk + maxChunk / 8 + 1024
        scratchA = .allocate(byteCount: size, alignment: 64)
        scratchB = .allocate(byteCount: size, alignment: 64)
        scratchC = .allocate(byteCount: size, alignment: 64)
    }

    deinit {
        scratchA.deallocate()
        scratchB.deallocate()
        scratchC.deallocate()
    }

    /// Chooses the cheapest stored form of `raw`. Returns `.raw` with an empty payload when nothing pays;
    /// otherwise a payload that lives in this coder's scratch space until the next call.
    func encode(_ raw: UnsafeRawBufferPointer) -> (ChunkCodec, UnsafeRawBufferPointer) {
        let n = raw.count
        let keepBelow = n - n / Self.minimumSavingDivisor
        guard n >= 64 else { return (.raw, UnsafeRawBufferPointer(start: nil, count: 0)) }

        // Try the odd (exponent) stream first: it is half the data and says whether the chunk is 16-bit floats.
        let evenCount = (n + 1) / 2
        let oddCount = n / 2
        let even = UnsafeMutableRawBufferPointer(rebasing: scratchA[0..<evenCount])
        let odd = UnsafeMutableRawBufferPointer(rebasing: scratchA[evenCount..<n])
        Self.split(raw, even: even, odd: odd)
        let oddLimit = oddCount * Self.streamKeepNumerator / 8
        let oddOut = UnsafeMutableRawBufferPointer(rebasing: scratchB[0..<scratchB.count / 2])
        if let oddZ = compressor.compress(UnsafeRawBufferPointer(odd), into: oddOut), oddZ <= oddLimit {
            let evenOut = UnsafeMutableRawBufferPointer(rebasing: scratchB[scratchB.count / 2..<scratchB.count])
            var flags: UInt8 = 0b10
            var evenStored = UnsafeRawBufferPointer(even)
            if let evenZ = compressor.compress(UnsafeRawBufferPointer(even), into: evenOut),
                evenZ <= evenCount * Self.streamKeepNumerator / 8
            {
                flags |= 0b01
                evenStored = UnsafeRawBufferPointer(rebasing: evenOut[0..<evenZ])
            }
            let total = 5 + evenStored.count + oddZ
            if total < keepBelow {
                scratchC[0] = flags
                scratchC.storeBytes(of: UInt32(evenStored.count).bigEndian, toByteOffset: 1, as: UInt32.self)
                UnsafeMutableRawBufferPointer(rebasing: scratchC[5..<5 + evenStored.count]).copyMemory(
                    from: evenStored)
                UnsafeMutableRawBufferPointer(rebasing: scratchC[5 + evenStored.count..<total]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: oddOut[0..<oddZ]))
                return (.byteGrouped, UnsafeRawBufferPointer(rebasing: scratchC[0..<total]))
            }
        }
        let out = UnsafeMutableRawBufferPointer(rebasing: scratchC[0..<keepBelow])
        if let z = compressor.compress(raw, into: out) {
            return (.zstd, UnsafeRawBufferPointer(rebasing: scratchC[0..<z]))
        }
        return (.raw, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Decodes `payload` stored with `codec` into `destination`, which must be exactly the original length.
    /// Returns false when the payload is malformed in any way; the caller then reports the chunk as corrupt.
    func decode(
        _ codec: ChunkCodec, _ payload: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    )
        -> Bool
    {
        let n = destination.count
        switch codec {
        case .raw:
            guard payload.count == n else { return false }
            destination.copyMemory(from: payload)
            return true
        case .zstd:
            return decompressor.decompress(payload, into: destination)
        case .byteGrouped:
            guard payload.count >= 5, n <= scratchA.count else { return false }
            let flags = payload[0]
            guard flags & ~0b11 == 0 else { return false }
            let evenStored = Int(UInt32(bigEndian: payload.loadUnaligned(fromByteOffset: 1, as: UInt32.self)))
            guard evenStored <= payload.count - 5 else { return false }
            let evenCount = (n + 1) / 2
            let oddCount = n / 2
            let evenIn = UnsafeRawBufferPointer(rebasing: payload[5..<5 + evenStored])
            let oddIn = UnsafeRawBufferPointer(rebasing: payload[(5 + evenStored)...])
            let even = UnsafeMutableRawBufferPointer(rebasing: scratchA[0..<evenCount])
            let odd = UnsafeMutableRawBufferPointer(rebasing: scratchA[evenCount..<evenCount + oddCount])
            if flags & 0b01 != 0 {
                guard decompressor.decompress(evenIn, into: even) else { return false }
            } else {
                guard evenIn.count == evenCount else { return false }
                even.copyMemory(from: evenIn)
            }
            if flags & 0b10 != 0 {
                guard decompressor.decompress(oddIn, into: odd) else { return false }
            } else {
                guard oddIn.count == oddCount else { return false }
                odd.copyMemory(from: oddIn)
            }
            Self.interleave(even: UnsafeRawBufferPointer(even), odd: UnsafeRawBufferPointer(odd), into: destination)
            return true
        }
    }

    static func split(
        _ raw: UnsafeRawBufferPointer, even: UnsafeMutableRawBufferPointer,
        odd: UnsafeMutableRawBufferPointer
    ) {
        let src = raw.bindMemory(to: UInt8.self)
        let e = even.bindMemory(to: UInt8.self)
        let o = odd.bindMemory(to: UInt8.self)
        let pairs = raw.count / 2
        var i = 0
        while i < pairs {
            e[i] = src[2 * i]
            o[i] = src[2 * i + 1]
            i += 1
        }
        if raw.count & 1 == 1 { e[pairs] = src[raw.count - 1] }
    }

    static func interleave(
        even: UnsafeRawBufferPointer, odd: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) {
        let d = destination.bindMemory(to: UInt8.self)
        let e = even.bindMemory(to: UInt8.self)
        let o = odd.bindMemory(to: UInt8.self)
        let pairs = destination.count / 2
        var i = 0
        while i < pairs {
            d[2 * i] = e[i]
            d[2 * i + 1] = o[i]
            i += 1
        }
        if destination.count & 1 == 1 { d[destination.count - 1] = e[pairs] }
    }
}
