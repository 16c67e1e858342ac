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

/**
 * What one drain run did.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class drain_result {
    /** @var int Rows the broker confirmed (and that were deleted). */
    public $published = 0;

    /** @var int Rows tried and kept with an error. */
    public $failed = 0;

    /** @var int Batches tried. */
    public $batches = 0;

    /** @var string|null The last error (redacted), if any. */
    public $lasterror = null;

    /** @var string Why the run stopped: empty, broker, refused, deadline, maxrows. */
    public $stopreason = '';

    /**
     * Returns how many rows were tried.
     *
     * @return int Published plus failed.
     */
    public function tried(): int {
        return $this->published + $this->failed;
    }

    /**
     * Adds another run's counts to these (the follower's total); the last error and stop reason are the other's.
     *
     * @param drain_result $other The other run.
     * @return void
     */
    public function add(drain_result $other): void {
        $this->published += $other->published;
        $this->failed += $other->failed;
        $this->batches += $other->batches;
        $this->lasterror = $other->lasterror ?? $this->lasterror;
        $this->stopreason = $other->stopreason;
    }

    /**
     * Describes the run in one line, for task and CLI output.
     *
     * @return string E.g. "1000 published, 0 kept in 5 batches (stopped: empty)".
     */
    public function summary(): string {
        $text = "{$this->published} published, {$this->failed} kept in {$this->batches} batches (stopped: {$this->stopreason})";
        if ($this->lasterror !== null) {
            $text .= "; last error: {$this->lasterror}";
        }
        return $text;
    }
}
