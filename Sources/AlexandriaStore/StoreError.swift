/// The one error type of AlexandriaStore: a code to switch on, a message that says what went wrong and what to do,
/// and where it was thrown.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A path that does not exist or cannot be read.
        case unreadablePath
        /// A file changed (size, mtime or inode) while it was being added.
        case fileChanged
        /// The configured store budget would be exceeded.
        case budgetExceeded
        /// The disk is full (ENOSPC/EDQUOT).
        case diskFull
        /// A chunk's bytes on disk do not match its id, or its record is damaged or cut short.
        case corruptChunk
        /// The index names a chunk the packs do not hold.
        case missingChunk
        /// The SQLite index is damaged or not an index.
        case indexCorrupt
        /// Another process holds the index or the writer lock for longer than the timeout.
        case indexLocked
        /// No such file in the store.
        case unknownAddress
        /// A byte range outside the file.
        case rangeNotSatisfiable
        /// The home has no store yet.
        case notInitialized
        /// The index was written by a newer version.
        case unsupportedVersion
        /// Any other I/O failure.
        case io
    }

    public let code: Code
    public let message: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { message }
}

extension StoreError: Equatable {
    /// Equal on code only.
    public static func == (lhs: StoreError, rhs: StoreError) -> Bool { lhs.code == rhs.code }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension StoreError {
    /// Maps `errno` after a failed system call on `path` to an error with a plain message.
    static func posix(_ what: String, path: String, errno code: Int32 = errno) -> StoreError {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOSPC, EDQUOT:
            return StoreError(.diskFull, "\(what) \(path): the disk is full (\(reason)); free space or move the home")
        case ENOENT:
            return StoreError(.unreadablePath, "\(what) \(path): no such file or directory")
        case EACCES, EPERM:
            return StoreError(.unreadablePath, "\(what) \(path): permission denied")
        default:
            return StoreError(.io, "\(what) \(path): \(reason)")
        }
    }
}
