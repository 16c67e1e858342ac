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
 * A durable spool of outbox rows that could not be written to the database: the last resort before an
 * event would be lost.
 *
 * One file per failed write, holding one JSON object per line (an outbox row without id). A file is written
 * under a temporary name, flushed to disk with fsync, then renamed: a reader sees whole files only. The drain
 * moves files back into the outbox ({@see spool::files()}, {@see spool::read()}, {@see spool::remove()}).
 * A file that cannot be parsed is renamed to *.bad and left for the administrator; it never stops a drain.
 *
 * Plain PHP: the folder is given by the caller (Moodle's dataroot in production).
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class spool {
    /** @var string Extension of complete spool files. */
    public const EXTENSION = '.jsonl';

    /** @var string Extension of files that could not be read back. */
    public const BAD_EXTENSION = '.bad';

    /** @var string[] Fields every spooled row carries. */
    public const FIELDS = ['eventid', 'eventtype', 'routingkey', 'userid', 'envelope', 'timecreated'];

    /** @var string The folder. */
    private $dir;

    /**
     * Uses a folder as the spool.
     *
     * @param string $dir The folder; {@see spool::append()} creates it when missing.
     */
    public function __construct(string $dir) {
        $this->dir = rtrim($dir, '/');
    }

    /**
     * Returns the folder.
     *
     * @return string The path.
     */
    public function dir(): string {
        return $this->dir;
    }

    /**
     * Writes rows durably as one new file.
     *
     * @param array[] $rows Outbox rows as arrays with at least {@see spool::FIELDS}.
     * @return string The file written.
     * @throws \RuntimeException When the folder or the file cannot be written or synced.
     */
    public function append(array $rows): string {
        if (!is_dir($this->dir) && !@mkdir($this->dir, 0770, true) && !is_dir($this->dir)) {
            throw new \RuntimeException("Cannot create the spool folder {$this->dir}");
        }
        $lines = '';
        foreach ($rows as $row) {
            $lines .= json_encode(self::spooled_row((array) $row), JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR) . "\n";
        }
        // Sortable by time, unique across processes and hosts sharing the dataroot.
        $name = sprintf('%017.6f-%s', microtime(true), bin2hex(random_bytes(6)));
        $temporary = "{$this->dir}/.{$name}.tmp";
        $final = "{$this->dir}/{$name}" . self::EXTENSION;
        $handle = @fopen($temporary, 'xb');
        if ($handle === false) {
            throw new \RuntimeException("Cannot create the spool file {$temporary}");
        }
        try {
            $written = fwrite($handle, $lines);
            if ($written !== strlen($lines) || !fflush($handle) || !fsync($handle)) {
                throw new \RuntimeException("Cannot write the spool file {$temporary} to disk");
            }
        } catch (\Throwable $e) {
            fclose($handle);
            @unlink($temporary);
            throw $e;
        }
        fclose($handle);
        if (!@rename($temporary, $final)) {
            @unlink($temporary);
            throw new \RuntimeException("Cannot rename the spool file {$temporary}");
        }
        return $final;
    }

    /**
     * Lists the complete spool files, oldest first.
     *
     * @return string[] Paths.
     */
    public function files(): array {
        $files = glob($this->dir . '/*' . self::EXTENSION);
        if (!$files) {
            return [];
        }
        sort($files, SORT_STRING);
        return $files;
    }

    /**
     * Lists the files that could not be read back.
     *
     * @return string[] Paths.
     */
    public function bad_files(): array {
        $files = glob($this->dir . '/*' . self::BAD_EXTENSION);
        return $files ? $files : [];
    }

    /**
     * Reads the rows of a spool file.
     *
     * @param string $file A path from {@see spool::files()}.
     * @return array[] The rows, in the order they were written.
     * @throws \RuntimeException When the file cannot be read or a line is not a spooled row.
     */
    public function read(string $file): array {
        $text = @file_get_contents($file);
        if ($text === false) {
            throw new \RuntimeException('Cannot read the spool file ' . basename($file));
        }
        $rows = [];
        foreach (explode("\n", rtrim($text, "\n")) as $number => $line) {
            try {
                $row = json_decode($line, true, 8, JSON_THROW_ON_ERROR);
            } catch (\JsonException $e) {
                throw new \RuntimeException('Spool file ' . basename($file) . ' line ' . ($number + 1)
                    . ' is not JSON: ' . $e->getMessage());
            }
            if (!is_array($row) || array_diff(self::FIELDS, array_keys($row))) {
                throw new \RuntimeException('Spool file ' . basename($file) . ' line ' . ($number + 1)
                    . ' is not an outbox row');
            }
            $rows[] = $row;
        }
        return $rows;
    }

    /**
     * Counts the events in the complete spool files.
     *
     * @return int Rows waiting in the spool.
     */
    public function count(): int {
        $count = 0;
        foreach ($this->files() as $file) {
            $text = @file_get_contents($file);
            $count += $text === false ? 0 : substr_count($text, "\n");
        }
        return $count;
    }

    /**
     * Removes a file whose rows are safe elsewhere.
     *
     * @param string $file A path from {@see spool::files()}.
     * @return void
     * @throws \RuntimeException When the file cannot be removed (its rows would be taken again).
     */
    public function remove(string $file): void {
        if (!@unlink($file) && file_exists($file)) {
            throw new \RuntimeException('Cannot remove the spool file ' . basename($file));
        }
    }

    /**
     * Sets a file that cannot be read back aside (renamed to *.bad), so that it no longer holds up the drain.
     *
     * @param string $file A path from {@see spool::files()}.
     * @return string The new path.
     */
    public function set_aside(string $file): string {
        $bad = substr($file, 0, -strlen(self::EXTENSION)) . self::BAD_EXTENSION;
        @rename($file, $bad);
        return $bad;
    }

    /**
     * Keeps the fields of a row that the spool stores.
     *
     * @param array $row The outbox row.
     * @return array The row with {@see spool::FIELDS} only.
     * @throws \InvalidArgumentException When a field is missing.
     */
    private static function spooled_row(array $row): array {
        $kept = [];
        foreach (self::FIELDS as $field) {
            if (!array_key_exists($field, $row)) {
                throw new \InvalidArgumentException("An outbox row to spool has no {$field}");
            }
            $kept[$field] = $row[$field];
        }
        return $kept;
    }
}
