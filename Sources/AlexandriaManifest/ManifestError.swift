/// The one error type of AlexandriaManifest: a code that audit and the CLI switch on, and a message for people.
public struct ManifestError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// Not valid JSON, or JSON of the wrong shape.
        case malformed
        /// A signature that does not verify over the bytes received.
        case badSignature
        /// Signed by a key we do not know, or by another key than the one named.
        case unknownKey
        /// A key that cannot be read or used (or is left readable by others).
        case badKey
        /// A path in a manifest that is absolute, escapes, repeats, or has forbidden characters.
        case hostilePath
        /// A count or length over its named limit.
        case limitExceeded
        /// A log entry out of sequence, or a checkpoint that is inconsistent, rolled back or unsigned.
        case logInconsistent
        /// A second, different binding for a release that already has one.
        case equivocation
        /// Something that was asked for is not known here.
        case notFound
        /// A log entry or manifest past the size at which the publisher's compromise notice froze its log.
        case frozen
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension ManifestError: Equatable {
    /// Equal on code only.
    public static func == (lhs: ManifestError, rhs: ManifestError) -> Bool { lhs.code == rhs.code }
}
