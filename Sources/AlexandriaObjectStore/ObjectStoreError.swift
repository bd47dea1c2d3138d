/// The one error type of AlexandriaObjectStore: a code to switch on, a message that names the endpoint, bucket or
/// key and says what to do, and where it was thrown.
public struct ObjectStoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The endpoint did not accept a connection (engine down, wrong host or port), after the retries.
        case unreachable
        /// The engine rejected the credentials: wrong secret (`SignatureDoesNotMatch`), unknown access key
        /// (`InvalidAccessKeyId`) or no permission (`AccessDenied`).
        case authentication
        /// The bucket does not exist (`NoSuchBucket`).
        case noSuchBucket
        /// The object does not exist (404 / `NoSuchKey`).
        case notFound
        /// The multipart upload is gone (`NoSuchUpload`): completed, aborted or expired.
        case noSuchUpload
        /// The engine is out of space (507, `InsufficientStorage`, or a 503 that says so).
        case storageFull
        /// The engine kept answering 5xx, or a request timed out, after the retries.
        case unavailable
        /// A byte range outside the object (416).
        case rangeNotSatisfiable
        /// A response that is not what S3 sends: bad XML, a wrong length, a missing header.
        case badResponse
        /// A response larger than the named limit for its kind.
        case limitExceeded
        /// Bytes that do not match their hash or checksum.
        case integrity
        /// Missing or unreadable configuration or credentials.
        case configuration
        /// Another node holds the write lease on the prefix.
        case leaseHeld
        /// Any other answer the engine gave (its S3 error code is in the message).
        case rejected
    }

    public let code: Code
    public let message: String
    /// The HTTP status, when the error came from a response.
    public let status: Int?
    public let file: String
    public let line: Int

    public init(_ code: Code, _ message: String, status: Int? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.status = status
        self.file = file
        self.line = line
    }

    public var description: String { message }
}

extension ObjectStoreError: Equatable {
    /// Equal on code only.
    public static func == (lhs: ObjectStoreError, rhs: ObjectStoreError) -> Bool { lhs.code == rhs.code }
}
