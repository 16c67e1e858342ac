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

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AbstractConnection;
use PhpAmqpLib\Connection\AMQPConnectionConfig;
use PhpAmqpLib\Connection\AMQPConnectionFactory;
use PhpAmqpLib\Message\AMQPMessage;

/**
 * Publishes outbox rows to the broker with publisher confirms and `mandatory`, and says which were confirmed.
 *
 * A row counts as published only when the broker acked it and did not return it: a nack, a
 * basic.return (no queue bound for its routing key) or a missing confirm makes it a failure of that
 * row only. When the broker cannot be used at all the whole batch fails with a {@see publish_exception}.
 * One connection and one confirm-mode channel are opened on first use and reused for later batches;
 * any protocol error drops them so that the next batch starts clean.
 *
 * AMQP properties (DESIGN.md §2): message_id = event id, content_type application/cloudevents+json,
 * delivery_mode 2 (persistent), timestamp = publish time, type = event type, app_id = local_eventrelay.
 *
 * @package    local_eventrelay
 * @copyright  2026 Moodle Event Relay contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class publisher {
    /** @var string The `app_id` of every message the plugin publishes. */
    public const APP_ID = 'local_eventrelay';

    /** @var string The `content_type` of every message: CloudEvents structured mode. */
    public const CONTENT_TYPE = 'application/cloudevents+json';

    /** @var int Persistent: survives a broker restart once confirmed. */
    public const DELIVERY_MODE_PERSISTENT = 2;

    /** @var connection_settings Where to publish. */
    private $settings;

    /** @var callable|null Gives the envelope builder of a site id, for rows that hold a recorded event. */
    private $builderfor;

    /** @var AbstractConnection|null The open connection, if any. */
    private $connection = null;

    /** @var AMQPChannel|null The open confirm-mode channel, if any. */
    private $channel = null;

    /** @var bool[] Event id => true, for messages of the current batch the broker acked. */
    private $acked = [];

    /** @var string[] Event id => reason, for messages of the current batch the broker nacked or returned. */
    private $refused = [];

    /**
     * Makes a publisher; nothing is opened until the first publish.
     *
     * @param connection_settings $settings Broker and exchange.
     * @param callable|null $builderfor Gives the {@see envelope_builder} of a site id ({@see outbox_row::body()}).
     */
    public function __construct(connection_settings $settings, ?callable $builderfor = null) {
        $this->settings = $settings;
        $this->builderfor = $builderfor;
    }

    /**
     * Closes the connection when the publisher goes away.
     */
    public function __destruct() {
        $this->close();
    }

    /**
     * Returns the settings.
     *
     * @return connection_settings The settings.
     */
    public function get_settings(): connection_settings {
        return $this->settings;
    }

    /**
     * Publishes rows in the given order and waits for the broker's confirms.
     *
     * @param outbox_row[] $rows The rows, ascending id.
     * @return publish_result Which rows were confirmed and why the others were not.
     * @throws publish_exception When the broker cannot be used; no row is confirmed then.
     */
    public function publish(array $rows): publish_result {
        $result = new publish_result();
        if (!$rows) {
            return $result;
        }
        $channel = $this->channel();
        $this->acked = [];
        $this->refused = [];
        $byeventid = [];
        try {
            foreach ($rows as $row) {
                try {
                    $body = $row->body($this->builderfor);
                } catch (\Throwable $e) {
                    $result->failed[$row->id] = 'Unreadable event: ' . $this->settings->redact($e->getMessage());
                    continue;
                }
                $byeventid[$row->eventid] = $row->id;
                $channel->basic_publish($this->message($row, $body), $this->settings->exchange, $row->routingkey, true);
            }
            $channel->wait_for_pending_acks_returns($this->settings->confirmtimeout);
        } catch (\Throwable $e) {
            $this->close();
            throw new publish_exception('Publishing to ' . $this->settings->describe() . ' failed: '
                . $this->settings->redact($e->getMessage()), 0);
        }
        foreach ($byeventid as $eventid => $rowid) {
            if (isset($this->refused[$eventid])) {
                $result->failed[$rowid] = $this->refused[$eventid];
            } else if (isset($this->acked[$eventid])) {
                $result->confirmed[] = $rowid;
            } else {
                $result->failed[$rowid] = 'No confirm from the broker';
            }
        }
        ksort($result->failed);
        return $result;
    }

    /**
     * Checks that the broker accepts the connection and that the exchange exists (passive declare).
     *
     * @return void
     * @throws publish_exception Saying what failed, redacted.
     */
    public function ping(): void {
        try {
            $this->channel()->exchange_declare($this->settings->exchange, 'topic', true);
        } catch (publish_exception $e) {
            throw $e;
        } catch (\Throwable $e) {
            $this->close();
            throw new publish_exception("The exchange '{$this->settings->exchange}' cannot be used on "
                . $this->settings->describe() . ': ' . $this->settings->redact($e->getMessage()));
        }
    }

    /**
     * Closes the channel and the connection, ignoring errors (the broker may be gone already).
     *
     * @return void
     */
    public function close(): void {
        foreach ([$this->channel, $this->connection] as $closable) {
            if ($closable === null) {
                continue;
            }
            try {
                $closable->close();
            } catch (\Throwable $e) {
                // Closing a broken connection fails; nothing is lost, no row was settled on it.
                unset($e);
            }
        }
        $this->channel = null;
        $this->connection = null;
    }

    /**
     * Makes the AMQP message of a row.
     *
     * @param outbox_row $row The row.
     * @param string $body The body with the sequence set.
     * @return AMQPMessage The message.
     */
    private function message(outbox_row $row, string $body): AMQPMessage {
        return new AMQPMessage($body, [
            'message_id' => $row->eventid,
            'content_type' => self::CONTENT_TYPE,
            'delivery_mode' => self::DELIVERY_MODE_PERSISTENT,
            'timestamp' => time(),
            'type' => $row->eventtype,
            'app_id' => self::APP_ID,
        ]);
    }

    /**
     * Returns the open channel, connecting first when needed.
     *
     * @return AMQPChannel A channel in confirm mode with the ack, nack and return handlers set.
     * @throws publish_exception When the library is missing or the broker cannot be reached.
     */
    private function channel(): AMQPChannel {
        if ($this->channel !== null && $this->channel->is_open()) {
            return $this->channel;
        }
        $this->close();
        amqp_library::require();
        try {
            $this->connection = AMQPConnectionFactory::create($this->connection_config());
            $channel = $this->connection->channel();
            // Confirms: a row is deleted only after the broker has taken responsibility for it.
            $channel->confirm_select();
            $channel->set_ack_handler(function (AMQPMessage $message): void {
                $this->acked[$message->get('message_id')] = true;
            });
            $channel->set_nack_handler(function (AMQPMessage $message): void {
                $this->refused[$message->get('message_id')] = 'Refused by the broker (nack)';
            });
            // Mandatory messages that no queue takes come back here before their ack.
            $channel->set_return_listener(function ($code, $text, $exchange, $routingkey, AMQPMessage $message): void {
                $this->refused[$message->get('message_id')] = "Returned by the broker: {$code} {$text} "
                    . "(exchange '{$exchange}', routing key '{$routingkey}')";
            });
            $this->channel = $channel;
            return $channel;
        } catch (\Throwable $e) {
            $this->close();
            throw new publish_exception('Cannot connect to ' . $this->settings->describe() . ': '
                . $this->settings->redact($e->getMessage()));
        }
    }

    /**
     * Makes php-amqplib's connection configuration.
     *
     * @return AMQPConnectionConfig The configuration.
     */
    private function connection_config(): AMQPConnectionConfig {
        $config = new AMQPConnectionConfig();
        $config->setHost($this->settings->host);
        $config->setPort($this->settings->port);
        $config->setVhost($this->settings->vhost);
        $config->setUser($this->settings->user);
        $config->setPassword($this->settings->get_password());
        $config->setConnectionTimeout($this->settings->connecttimeout);
        $config->setReadTimeout(max($this->settings->connecttimeout, $this->settings->confirmtimeout));
        $config->setWriteTimeout(max($this->settings->connecttimeout, $this->settings->confirmtimeout));
        // No heartbeats: a drain run is short and PHP cannot answer them while it waits on the database.
        $config->setHeartbeat(0);
        $config->setConnectionName(self::APP_ID);
        if ($this->settings->usetls) {
            $config->setIsSecure(true);
            $config->setSslVerify(true);
            $config->setSslVerifyName(true);
        }
        return $config;
    }
}
