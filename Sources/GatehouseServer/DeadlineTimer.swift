import NIOCore

/// A deadline that can be moved on every request without scheduling a task each time.
///
/// Guarantees: `onExpiry` runs on the event loop once the current deadline has passed (never
/// earlier, and no later than the deadline plus the loop's own latency); ``clear()`` and a later
/// ``set(_:)`` take effect at once. Moving the deadline later only updates a value: the pending
/// task wakes, sees the deadline moved, and sleeps again. Only moving it earlier than the
/// pending task reschedules. A keep-alive connection therefore schedules a task about once per
/// timeout period, not several per request. Only use it on its event loop.
final class DeadlineTimer {
    private let eventLoop: EventLoop
    private let onExpiry: () -> Void
    private var deadline: NIODeadline?
    private var task: Scheduled<Void>?
    private var taskDeadline: NIODeadline?

    init(eventLoop: EventLoop, onExpiry: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.onExpiry = onExpiry
    }

    /// The deadline is `delay` from now.
    func set(in delay: TimeAmount) { set(eventLoop.now + delay) }

    func set(_ newDeadline: NIODeadline) {
        deadline = newDeadline
        if let taskDeadline, taskDeadline <= newDeadline { return }
        schedule(at: newDeadline)
    }

    /// No deadline until the next ``set(_:)``.
    func clear() { deadline = nil }

    /// Clears the deadline and drops the pending task (the owner goes away).
    func cancel() {
        deadline = nil
        task?.cancel()
        task = nil
        taskDeadline = nil
    }

    private func schedule(at when: NIODeadline) {
        task?.cancel()
        taskDeadline = when
        // The task holds the timer until it runs or is cancelled (cancel() drops it).
        task = eventLoop.assumeIsolated().scheduleTask(deadline: when) { self.fire() }
    }

    private func fire() {
        task = nil
        taskDeadline = nil
        guard let deadline else { return }
        if deadline > eventLoop.now {
            schedule(at: deadline)
        } else {
            self.deadline = nil
            onExpiry()
        }
    }
}
