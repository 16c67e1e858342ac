<?php
// This file is part of Moodle - https://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <https://www.gnu.org/licenses/>.

namespace local_eventrelay\core;

use local_eventrelay\tests\memory_outbox_store;
use local_eventrelay\tests\relay_validator;
use local_eventrelay\tests\test_broker;

// Plain PHP, no Moodle: there is no MOODLE_INTERNAL to check.
require_once(__DIR__ . '/fixtures_test.php'); // phpcs:ignore moodle.Files.MoodleInternal.MoodleInternalGlobalState

/**
 * Cross-language: what the PHP builder makes for every fixture, stored in an outbox and published by the
 * PHP drainer to RabbitMQ, is consumed back and accepted by the Rust validator (relay-worker validate).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @coversNothing
 */
class cross_language_test extends \PHPUnit\Framework\TestCase {
    /**
     * Every fixture type goes PHP builder → outbox → PHP publisher → RabbitMQ → consumer → Rust validator.
     *
     * @return void
     */
    public function test_published_fixtures_validate_in_rust(): void {
        $broker = new test_broker();
        try {
            $queue = $broker->queue('#');
            $store = new memory_outbox_store();
            $built = [];
            foreach (array_keys(fixtures_test::FIXTURES) as $name) {
                [$fixture, $envelope] = fixtures_test::rebuild($name);
                $row = $store->add($envelope, event_types::routing_key($envelope['moodlesite'], $envelope['type']));
                $built[$row->id] = $envelope;
            }

            $result = (new drainer($store, new publisher($broker->publisher_settings())))->drain();
            $this->assertSame(count($built), $result->published);

            $messages = $broker->take_all($queue);
            $this->assertCount(count($built), $messages);
            $bodies = [];
            $types = [];
            foreach ($messages as $message) {
                $body = $message->getBody();
                $decoded = json_decode($body, true);
                $rowid = (int) $decoded['sequence'];
                $this->assertSame(sequence::with_sequence($built[$rowid], $rowid), $decoded);
                $this->assertSame($decoded['type'], $message->get('type'));
                $this->assertSame($decoded['id'], $message->get('message_id'));
                $bodies[] = $body;
                $types[$decoded['type']] = true;
            }
            $this->assertCount(12, $types, 'All twelve types crossed the broker');

            $verdict = relay_validator::validate($bodies);
            foreach ($verdict['results'] as $i => $check) {
                $this->assertTrue($check['ok'], "Published event {$i} rejected by the Rust validator: "
                    . ($check['reason'] ?? '?') . "\n{$bodies[$i]}");
            }
            $this->assertSame(0, $verdict['exitcode']);
        } finally {
            $broker->cleanup();
        }
    }
}
