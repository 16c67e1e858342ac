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

/**
 * Bootstrap of the plain-PHP tests: autoloads the plugin's classes without Moodle and runs the validator.
 *
 * Classes named local_eventrelay\X\Y load from moodle-plugin/classes/X/Y.php, as Moodle's own
 * autoloader would load them.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_eventrelay\tests;

use PHPUnit\Framework\Assert;

// Plain PHP, no Moodle: there is no MOODLE_INTERNAL to check.
// phpcs:ignore moodle.Files.MoodleInternal.MoodleInternalGlobalState
spl_autoload_register(function (string $classname): void {
    $prefix = 'local_eventrelay\\';
    if (strncmp($classname, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $relative = str_replace('\\', '/', substr($classname, strlen($prefix)));
    $file = relay_validator::repository_root() . '/moodle-plugin/classes/' . $relative . '.php';
    if (is_file($file)) {
        require_once($file);
    }
});

require_once(__DIR__ . '/support/memory_outbox_store.php');
require_once(__DIR__ . '/support/test_broker.php');
require_once(__DIR__ . '/support/sample_events.php');

/**
 * Runs `relay-worker validate --json -`, the shared Rust validator, on JSON lines.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class relay_validator {
    /**
     * Returns the repository root (the folder holding schemas/ and moodle-plugin/).
     *
     * @return string The absolute path.
     */
    public static function repository_root(): string {
        return dirname(__DIR__, 2);
    }

    /**
     * Returns the path of the relay-worker binary: $RELAY_WORKER_BIN, else target/debug/relay-worker.
     *
     * @return string The path.
     */
    public static function binary(): string {
        $bin = getenv('RELAY_WORKER_BIN');
        if ($bin === false || $bin === '') {
            $bin = self::repository_root() . '/target/debug/relay-worker';
        }
        return $bin;
    }

    /**
     * Validates events, one JSON text each, and returns the validator's verdict on each, in input order.
     *
     * Fails the running test with a clear message when the binary is missing or does not answer one
     * line per event.
     *
     * @param string[] $jsonlines One JSON document per entry, without new lines (as json_encoder::encode() makes them).
     * @return array ['exitcode' => int, 'results' => array[] of {"input","ok","code","reason"}, 'stderr' => string]
     */
    public static function validate(array $jsonlines): array {
        $bin = self::binary();
        if (!is_file($bin) || !is_executable($bin)) {
            Assert::fail("The relay-worker validator is missing at {$bin}. Build it with `cargo build -p relay-worker` "
                . 'from the repository root, or point RELAY_WORKER_BIN at a built binary.');
        }
        foreach ($jsonlines as $i => $line) {
            if (strpos($line, "\n") !== false || trim($line) === '') {
                Assert::fail("Event {$i} is not one non-blank line of JSON");
            }
        }
        $infile = tempnam(sys_get_temp_dir(), 'relay-validate-in-');
        $errfile = tempnam(sys_get_temp_dir(), 'relay-validate-err-');
        try {
            file_put_contents($infile, implode("\n", $jsonlines) . "\n");
            // The command is an argument vector: no shell is involved and no data is interpolated.
            $process = proc_open(
                [$bin, 'validate', '--json', '-'],
                [0 => ['file', $infile, 'r'], 1 => ['pipe', 'w'], 2 => ['file', $errfile, 'w']],
                $pipes
            );
            if (!is_resource($process)) {
                Assert::fail("Could not start {$bin}");
            }
            $stdout = stream_get_contents($pipes[1]);
            fclose($pipes[1]);
            $exitcode = proc_close($process);
            $stderr = (string) file_get_contents($errfile);
        } finally {
            @unlink($infile);
            @unlink($errfile);
        }
        $results = [];
        foreach (preg_split('/\R/', trim((string) $stdout)) as $outline) {
            if ($outline === '') {
                continue;
            }
            $result = json_decode($outline, true);
            if (!is_array($result) || !isset($result['input']) || !preg_match('/^-:([0-9]+)$/D', $result['input'], $m)) {
                Assert::fail("Unexpected validator output line: {$outline}\nstderr: {$stderr}");
            }
            $results[(int) $m[1] - 1] = $result;
        }
        if (count($results) !== count($jsonlines)) {
            Assert::fail('The validator answered ' . count($results) . ' lines for ' . count($jsonlines)
                . " events (exit code {$exitcode}).\nstdout: {$stdout}\nstderr: {$stderr}");
        }
        ksort($results);
        return ['exitcode' => $exitcode, 'results' => $results, 'stderr' => $stderr];
    }

    /**
     * Asserts that every envelope validates against the shared schemas.
     *
     * @param array[] $envelopes Envelopes as envelope_builder::build() returns them, keyed by a label.
     * @return void
     */
    public static function assert_all_valid(array $envelopes): void {
        Assert::assertNotEmpty($envelopes, 'Nothing to validate');
        $labels = array_keys($envelopes);
        $lines = array_map([\local_eventrelay\core\json_encoder::class, 'encode'], array_values($envelopes));
        $verdict = self::validate($lines);
        foreach ($verdict['results'] as $i => $result) {
            Assert::assertTrue($result['ok'] ?? false, "Event '{$labels[$i]}' is invalid: ("
                . ($result['code'] ?? '?') . ') ' . ($result['reason'] ?? '?') . "\n{$lines[$i]}");
        }
        Assert::assertSame(0, $verdict['exitcode'], "relay-worker validate exited with {$verdict['exitcode']}: "
            . $verdict['stderr']);
    }
}
