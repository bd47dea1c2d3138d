/// Named limits on everything read from a file, the index or the wire. Checked before anything is allocated.
public enum Limits {
    /// Largest chunk any peer or file may present: the v1 chunker's maximum is 1 MiB; 16 MiB leaves room for
    /// larger-average chunkers in later versions.
    public static let maxChunkBytes = 16 << 20
    /// Most chunks in one file: 2^24 chunks of 256 KiB average is 4 TiB.
    public static let maxChunksPerFile = 1 << 24
    /// Largest file: 16 TiB.
    public static let maxFileBytes: UInt64 = 1 << 44
}
