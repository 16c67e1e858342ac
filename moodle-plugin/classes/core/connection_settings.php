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
 * Where and how to reach the broker: the plugin's connection settings as one value.
 *
 * Plain PHP. The password is kept private and never appears in var_dump(), print_r() or an
 * exception message made from this object.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class connection_settings {
    /** @var string The exchange the plugin publishes to unless configured otherwise. */
    public const DEFAULT_EXCHANGE = 'moodle.ingest';

    /** @var string Broker host name or address. */
    public $host;

    /** @var int Broker port (5672, or 5671 with TLS). */
    public $port;

    /** @var string Virtual host. */
    public $vhost;

    /** @var string User name. */
    public $user;

    /** @var string Password; private so that it is never printed by accident. */
    private $password;

    /** @var bool Whether to connect with TLS (certificate and host name verified). */
    public $usetls;

    /** @var string Exchange to publish to. */
    public $exchange;

    /** @var float Seconds to wait for the TCP and AMQP connection. */
    public $connecttimeout;

    /** @var float Seconds to wait for the publisher confirms of one batch. */
    public $confirmtimeout;

    /**
     * Makes the settings.
     *
     * @param string $host Broker host.
     * @param int $port Broker port.
     * @param string $vhost Virtual host, e.g. "/".
     * @param string $user User name.
     * @param string $password Password.
     * @param bool $usetls Whether to use TLS.
     * @param string $exchange Exchange to publish to.
     * @param float $connecttimeout Seconds to wait for the connection.
     * @param float $confirmtimeout Seconds to wait for the confirms of a batch.
     */
    public function __construct(
        string $host = '127.0.0.1',
        int $port = 5672,
        string $vhost = '/',
        string $user = 'guest',
        string $password = 'guest',
        bool $usetls = false,
        string $exchange = self::DEFAULT_EXCHANGE,
        float $connecttimeout = 5.0,
        float $confirmtimeout = 30.0
    ) {
        $this->host = $host;
        $this->port = $port;
        $this->vhost = $vhost === '' ? '/' : $vhost;
        $this->user = $user;
        $this->password = $password;
        $this->usetls = $usetls;
        $this->exchange = $exchange;
        $this->connecttimeout = $connecttimeout;
        $this->confirmtimeout = $confirmtimeout;
    }

    /**
     * Returns the password, for the connection only.
     *
     * @return string The password.
     */
    public function get_password(): string {
        return $this->password;
    }

    /**
     * Returns a copy with another exchange (tests use a fresh one each).
     *
     * @param string $exchange The exchange name.
     * @return self The copy.
     */
    public function with_exchange(string $exchange): self {
        $copy = clone $this;
        $copy->exchange = $exchange;
        return $copy;
    }

    /**
     * Returns a copy with another port (tests use it to point at a closed port).
     *
     * @param int $port The port.
     * @return self The copy.
     */
    public function with_port(int $port): self {
        $copy = clone $this;
        $copy->port = $port;
        return $copy;
    }

    /**
     * Describes the broker for messages and checks: scheme, user, host, port and vhost, never the password.
     *
     * @return string E.g. "amqp://guest@127.0.0.1:5672/%2F".
     */
    public function describe(): string {
        return ($this->usetls ? 'amqps' : 'amqp') . '://' . rawurlencode($this->user) . '@' . $this->host . ':'
            . $this->port . '/' . rawurlencode($this->vhost);
    }

    /**
     * Keeps the password out of var_dump() and print_r().
     *
     * @return array The properties, the password masked.
     */
    public function __debugInfo(): array { // phpcs:ignore moodle.NamingConventions.ValidFunctionName.MagicLikeMethod
        $info = get_object_vars($this);
        $info['password'] = $this->password === '' ? '' : '********';
        return $info;
    }

    /**
     * Removes the password (and anything that looks like URL credentials) from a text meant for a log or the outbox.
     *
     * @param string $text An error message, e.g. from the AMQP library.
     * @param int $maxlength Longest text kept, in bytes (the rest is cut and marked).
     * @return string The redacted text.
     */
    public function redact(string $text, int $maxlength = 1024): string {
        if ($this->password !== '') {
            $text = str_replace([$this->password, rawurlencode($this->password)], '[redacted]', $text);
        }
        $text = preg_replace('~(amqps?://[^:/@\s]*):[^@\s]*@~i', '$1:[redacted]@', $text);
        if (strlen($text) > $maxlength) {
            $text = mb_strcut($text, 0, $maxlength - 3, 'UTF-8') . '...';
        }
        return $text;
    }
}
