/// The one error type of AlexandriaCore: a code to switch on, a message for people.
public struct CoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case limitExceeded
        case malformedRecipe
        case malformedInput
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension CoreError: Equatable {
    /// Equal on code only, so tests can match the kind of failure without the exact wording.
    public static func == (lhs: CoreError, rhs: CoreError) -> Bool { lhs.code == rhs.code }
}
