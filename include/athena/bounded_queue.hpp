// A blocking queue with a fixed capacity: producers wait while it is full, which is how the
// walk is held back when hashing falls behind, so memory stays flat however big the tree.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace athena {

// Safe for any number of producer and consumer threads.
template <typename T>
class BoundedQueue {
public:
    explicit BoundedQueue(std::size_t capacity) : m_capacity(capacity) {}

    // Blocks while full. Returns false (and drops the item) once the queue is closed.
    bool push(T item) {
        std::unique_lock lock(m_mutex);
        m_not_full.wait(lock, [&] { return m_closed || m_items.size() < m_capacity; });
        if (m_closed) {
            return false;
        }
        m_items.push_back(std::move(item));
        m_not_empty.notify_one();
        return true;
    }

    // Blocks until an item arrives; empty once the queue is closed and drained.
    std::optional<T> pop() {
        std::unique_lock lock(m_mutex);
        m_not_empty.wait(lock, [&] { return m_closed || !m_items.empty(); });
        if (m_items.empty()) {
            return std::nullopt;
        }
        T item = std::move(m_items.front());
        m_items.pop_front();
        m_not_full.notify_one();
        return item;
    }

    // Blocks for the first item, then takes up to max_items without waiting again. Returns an
    // empty vector once the queue is closed and drained.
    std::vector<T> pop_batch(std::size_t max_items) {
        std::vector<T> batch;
        std::unique_lock lock(m_mutex);
        m_not_empty.wait(lock, [&] { return m_closed || !m_items.empty(); });
        while (!m_items.empty() && batch.size() < max_items) {
            batch.push_back(std::move(m_items.front()));
            m_items.pop_front();
        }
        m_not_full.notify_all();
        return batch;
    }

    // Wakes every waiter; later pushes fail, pops drain what is left.
    void close() {
        std::lock_guard lock(m_mutex);
        m_closed = true;
        m_not_empty.notify_all();
        m_not_full.notify_all();
    }

private:
    const std::size_t m_capacity;
    std::mutex m_mutex;
    std::condition_variable m_not_empty;
    std::condition_variable m_not_full;
    std::deque<T> m_items;
    bool m_closed = false;
};

} // namespace athena
