// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title StakeManager
/// @notice Validators join and leave bttd's validator set by staking BTT; delegators stake
///         with them and share the block rewards to the wei. System contract at
///         0x0000000000000000000000000000000000001000 (BTTC's validator-set address, which
///         also receives the base fees). See docs/staking.md for the lifecycle, formulas,
///         parameters, storage layout and gas.
///
///         - A validator has an owner (msg.sender at registration: stake and rewards) and a
///           signer (the node's account key), which the owner may rotate. Its BLS key (G1,
///           bttd's min-pk scheme) is checked here: valid, not the identity, not registered
///           before, with a proof of possession and a registration signature over (chain id,
///           owner, signer) under its own DST, so a key copied from a pending registration
///           cannot be registered by anyone else.
///         - Self-stake is the owner's delegation to its own validator; every delegation
///           earns by F1-style reward-per-stake accounting (no loop over delegators).
///         - The system caller (0xff..fe) pays each block's rewards in the next block
///           (`distributeBlockReward`) and computes the next epoch's set at an epoch's last
///           block (`endEpoch`).
///         - Every state change is written before value leaves the contract
///           (checks-effects-interactions), and the value-moving entry points also hold a
///           transient re-entrancy lock.
contract StakeManager {
    // ---------------------------------------------------------------------------------------
    // Constants
    // ---------------------------------------------------------------------------------------

    /// The protocol's system caller (EIP-4788/2935 style): only it may pay rewards and end
    /// epochs.
    address public constant SYSTEM_CALLER = address(uint160(type(uint160).max - 1));
    /// 1 BTT in wei: the unit of voting power.
    uint256 public constant BTT = 1e18;
    uint256 public constant MAX_BPS = 10_000;
    /// A validator's commission rises by at most this much per epoch.
    uint256 public constant MAX_COMMISSION_STEP_BPS = 100;
    /// At most this many unbonding entries per (delegator, validator).
    uint256 public constant MAX_UNBONDING_ENTRIES = 7;
    /// Scale of the cumulative reward-per-stake accumulators.
    uint256 public constant REWARD_SCALE = 1e30;
    /// At most this many delegators (self-stake included) per validator: slashing visits each.
    uint256 public constant MAX_DELEGATORS = 256;
    /// At most this many stake changes per (delegator, validator) within the evidence window:
    /// slashing replays them to find the stake bonded at the offence.
    uint256 public constant MAX_STAKE_CHANGES = 16;
    /// Offence kinds (consensus/src/messages.rs `Evidence::offence`): two prevotes, two
    /// precommits or two proposals of one validator at one height and round.
    uint8 public constant OFFENCE_PREVOTES = 0;
    uint8 public constant OFFENCE_PRECOMMITS = 1;
    uint8 public constant OFFENCE_PROPOSALS = 2;

    /// DST of proofs of possession: bttd's consensus POP_DST (consensus/src/bls.rs).
    bytes public constant POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    /// DST of registration signatures over (chain id, owner, signer); used nowhere else.
    bytes public constant REGISTRATION_DST = "BTTD_STAKE_REGISTER_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    // EIP-2537 (Prague) and other precompiles.
    address private constant MODEXP = address(0x05);
    address private constant BLS12_G2ADD = address(0x0d);
    address private constant BLS12_PAIRING_CHECK = address(0x0f);
    address private constant BLS12_MAP_FP2_TO_G2 = address(0x11);

    // The BLS12-381 base field modulus p, and (p - 1) / 2, as 48-byte big-endian halves.
    uint256 private constant P_HI = 0x1a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    uint256 private constant HALF_P_HI = 0x0d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant HALF_P_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;
    /// -G1 (the negated generator) in EIP-2537 encoding.
    bytes private constant NEG_G1 =
        hex"0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f267816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca";

    uint8 public constant STATUS_NONE = 0;
    uint8 public constant STATUS_CANDIDATE = 1;
    uint8 public constant STATUS_JAILED = 2;
    uint8 public constant STATUS_TOMBSTONED = 3;
    uint8 public constant STATUS_ACTIVE = 4;

    // ---------------------------------------------------------------------------------------
    // Types
    // ---------------------------------------------------------------------------------------

    /// Protocol parameters (genesis `config.bttd.staking`).
    struct Params {
        uint256 minSelfStake; // wei
        uint256 minDelegation; // wei
        uint256 maxValidators;
        uint256 unbondingEpochs;
        uint256 issuancePerBlock; // wei, credited to this contract by the protocol
        uint256 proposerBonusBps;
        uint256 epochLength; // blocks
        uint256 slashDoubleSignBps;
        uint256 slashDowntimeBps;
        uint256 downtimeWindow; // blocks
        uint256 downtimeMinSignedBps;
        uint256 jailEpochs;
    }

    struct Validator {
        // slot 0
        address signer;
        uint16 commissionBps;
        uint16 commissionEpochStartBps; // commission when commissionEpoch began
        uint64 commissionEpoch;
        // slot 1
        bool registered;
        bool tombstoned; // double-signed: never in a set again
        uint64 jailedUntilEpoch; // `unjail()` works from this epoch on
        uint64 listIndex; // position in validatorList + 1; 0 when not listed
        bool jailed; // out of every set until `unjail()`
        // slot 2..
        uint256 totalStake; // self-stake + delegations, wei
        uint256 rewardPerStake; // cumulative delegators' reward per wei of stake, * REWARD_SCALE
        uint256 commissionOwed; // unclaimed commission, wei
        bytes32 blsKeyHi; // compressed BLS key, bytes 0..31
        bytes16 blsKeyLo; // compressed BLS key, bytes 32..47
    }

    struct Delegation {
        uint256 stake;
        uint256 rewardPerStakeSnapshot;
        uint256 pendingRewards; // settled, unclaimed
    }

    struct Unbonding {
        address validator;
        uint256 amount;
        uint64 completesAtEpoch;
        uint64 startBlock; // block of the undelegation (entries of one block are merged)
    }

    /// One change of a delegation's bonded stake, kept while evidence of an offence before it
    /// can still arrive: slashing replays them to tell stake bonded at the offence from stake
    /// added after it, and which unbonding entries hold stake that was bonded at the offence.
    struct StakeChange {
        uint64 blockNumber;
        bool undelegation; // the stake left into the entry of (validator, blockNumber)
        uint184 stakeAfter;
    }

    /// Signed blocks of one validator in one downtime window.
    struct Uptime {
        uint64 window;
        uint64 missed;
    }

    // ---------------------------------------------------------------------------------------
    // Storage (the layout is documented in docs/staking.md; slots 0..6 are the parameters)
    // ---------------------------------------------------------------------------------------

    uint256 public minSelfStake; // slot 0
    uint256 public minDelegation; // slot 1
    uint256 public maxValidators; // slot 2
    uint256 public unbondingEpochs; // slot 3
    uint256 public issuancePerBlock; // slot 4
    uint256 public proposerBonusBps; // slot 5
    uint256 public epochLength; // slot 6

    uint256 public currentEpoch; // slot 7
    /// Block whose `endEpoch` installed the current set: blocks up to it were decided by the
    /// previous epoch's set.
    uint256 public setChangedAtBlock; // slot 8
    /// Wei owed to stakers: bonded stake, unbonding stake, credited unclaimed rewards. The
    /// balance above their sum is the undistributed reward pool.
    uint256 public totalBonded; // slot 9
    uint256 public totalUnbonding; // slot 10
    uint256 public totalRewardsOwed; // slot 11

    mapping(address owner => Validator) internal validators; // slot 12
    /// Owners `endEpoch` considers: registered, not tombstoned, self-stake >= minSelfStake
    /// when last looked at. Pruned at each epoch's end and re-entered by a self-stake top-up,
    /// so stale registrations cannot make `endEpoch` grow.
    address[] internal validatorList; // slot 13
    mapping(address signer => address owner) public ownerOfSigner; // slot 14
    mapping(bytes32 keyHash => address owner) public ownerOfBlsKey; // slot 15
    mapping(address delegator => mapping(address validator => Delegation)) internal delegations; // 16
    mapping(address delegator => Unbonding[]) internal unbondings; // slot 17
    mapping(address delegator => mapping(address validator => uint256)) public unbondingCount; // 18
    address[] internal activeSet; // slot 19
    mapping(uint256 epoch => mapping(address owner => uint256)) public powerAt; // slot 20
    mapping(uint256 epoch => mapping(address owner => address)) public signerAt; // slot 21

    uint256 public slashDoubleSignBps; // slot 22
    uint256 public slashDowntimeBps; // slot 23
    uint256 public downtimeWindow; // slot 24
    uint256 public downtimeMinSignedBps; // slot 25
    uint256 public jailEpochs; // slot 26
    mapping(address validator => address[]) internal delegatorsOf; // slot 27
    mapping(address delegator => mapping(address validator => uint256)) internal delegatorSlot; // 28
    mapping(address delegator => mapping(address validator => StakeChange[])) internal stakeHistory; // 29
    /// Offences slashed, by `offenceId`: the block whose system call slashed each.
    mapping(bytes32 offence => uint256 blockNumber) public offenceSlashedAt; // slot 30
    mapping(address owner => Uptime) public uptime; // slot 31

    bool private transient locked;

    // ---------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------

    event ValidatorRegistered(
        address indexed owner, address indexed signer, bytes blsPublicKey, uint16 commissionBps, uint256 selfStake
    );
    event Delegated(address indexed delegator, address indexed validator, uint256 amount);
    event Undelegated(
        address indexed delegator, address indexed validator, uint256 amount, uint256 completesAtEpoch
    );
    event ValidatorLeft(address indexed owner, uint256 selfStake);
    event Withdrawn(address indexed delegator, uint256 amount);
    event RewardsClaimed(address indexed delegator, address indexed validator, uint256 amount);
    event CommissionChanged(address indexed owner, uint16 oldBps, uint16 newBps);
    event SignerChanged(address indexed owner, address indexed oldSigner, address indexed newSigner);
    event BlockRewarded(uint256 indexed blockNumber, address indexed proposer, uint256 pool, uint256 toValidators);
    event ProposerBonusPaid(uint256 indexed blockNumber, address indexed proposer, uint256 amount, bool paid);
    event ValidatorRewarded(address indexed owner, uint256 share, uint256 commission);
    event EpochEnded(uint256 indexed newEpoch, uint256 validators, uint256 totalPower);
    event Slashed(
        address indexed owner, bytes32 indexed offence, uint256 offenceBlock, uint256 bps, uint256 amount
    );
    event DoubleSignIgnored(address indexed owner, bytes32 indexed offence, string reason);
    event Jailed(address indexed owner, uint256 untilEpoch, bool tombstoned);
    event Unjailed(address indexed owner);

    // ---------------------------------------------------------------------------------------
    // Modifiers
    // ---------------------------------------------------------------------------------------

    modifier onlySystem() {
        require(msg.sender == SYSTEM_CALLER, "only the system caller");
        _;
    }

    modifier nonReentrant() {
        require(!locked, "re-entrant call");
        locked = true;
        _;
        locked = false;
    }

    // ---------------------------------------------------------------------------------------
    // Genesis
    // ---------------------------------------------------------------------------------------

    /// Genesis runs this with the staking parameters and the genesis validators (their BLS
    /// keys compressed; genesis checks their proofs of possession off-chain) and a value equal
    /// to the sum of their stakes. The genesis validators form epoch 0's set.
    constructor(
        Params memory params,
        address[] memory owners,
        address[] memory signers,
        bytes[] memory blsKeys,
        uint256[] memory stakes
    ) payable {
        require(params.proposerBonusBps <= MAX_BPS, "proposer bonus over 10000 bps");
        require(params.maxValidators > 0, "maxValidators is zero");
        require(params.epochLength > 0, "epochLength is zero");
        require(params.minSelfStake >= BTT, "minSelfStake below 1 BTT");
        require(
            params.slashDoubleSignBps <= MAX_BPS && params.slashDowntimeBps <= MAX_BPS
                && params.downtimeMinSignedBps <= MAX_BPS,
            "slashing bps over 10000"
        );
        require(params.downtimeWindow > 0, "downtimeWindow is zero");
        minSelfStake = params.minSelfStake;
        minDelegation = params.minDelegation;
        maxValidators = params.maxValidators;
        unbondingEpochs = params.unbondingEpochs;
        issuancePerBlock = params.issuancePerBlock;
        proposerBonusBps = params.proposerBonusBps;
        epochLength = params.epochLength;
        slashDoubleSignBps = params.slashDoubleSignBps;
        slashDowntimeBps = params.slashDowntimeBps;
        downtimeWindow = params.downtimeWindow;
        downtimeMinSignedBps = params.downtimeMinSignedBps;
        jailEpochs = params.jailEpochs;

        uint256 n = owners.length;
        require(signers.length == n && blsKeys.length == n && stakes.length == n, "genesis arrays differ in length");
        uint256 sum;
        for (uint256 i = 0; i < n; i++) {
            bytes memory key = blsKeys[i];
            require(key.length == 48 && uint8(key[0]) & 0xc0 == 0x80, "genesis BLS key not compressed G1");
            require(stakes[i] >= params.minSelfStake, "genesis stake below minSelfStake");
            bytes32 hi;
            bytes32 lo;
            assembly {
                hi := mload(add(key, 32))
                lo := mload(add(key, 64))
            }
            _register(owners[i], signers[i], hi, bytes16(lo), keccak256(key), 0);
            _addStake(owners[i], owners[i], stakes[i]);
            emit ValidatorRegistered(owners[i], signers[i], key, 0, stakes[i]);
            sum += stakes[i];
        }
        require(msg.value == sum, "value differs from the genesis stakes");
        _installSet(0);
    }

    // ---------------------------------------------------------------------------------------
    // Validators
    // ---------------------------------------------------------------------------------------

    /// Registers msg.sender as a validator owner with self-stake msg.value.
    /// @param blsPublicKey the G1 key uncompressed (96 bytes: x || y, big-endian, no flags)
    /// @param proofOfPossession the PoP signature (G2 uncompressed, 192 bytes: x.c1 || x.c0 ||
    ///        y.c1 || y.c0) over the compressed key under POP_DST
    /// @param registrationSignature a G2 signature (same encoding) over
    ///        abi.encodePacked(uint256 chainid, address owner, address signer) under
    ///        REGISTRATION_DST
    function registerValidator(
        address signer,
        bytes calldata blsPublicKey,
        bytes calldata proofOfPossession,
        bytes calldata registrationSignature,
        uint16 commissionBps
    ) external payable nonReentrant {
        require(!validators[msg.sender].registered, "owner already registered");
        require(signer != address(0), "zero signer");
        require(ownerOfSigner[signer] == address(0), "signer already registered");
        require(commissionBps <= MAX_BPS, "commission over 10000 bps");
        require(msg.value >= minSelfStake, "self-stake below minSelfStake");

        (bytes32 hi, bytes16 lo, bytes32 keyHash) =
            _checkKeys(signer, blsPublicKey, proofOfPossession, registrationSignature);
        _register(msg.sender, signer, hi, lo, keyHash, commissionBps);
        _addStake(msg.sender, msg.sender, msg.value);
        emit ValidatorRegistered(msg.sender, signer, abi.encodePacked(hi, lo), commissionBps, msg.value);
        emit Delegated(msg.sender, msg.sender, msg.value);
    }

    /// The registration's key checks: a valid key not registered before, its proof of
    /// possession, and its signature over (chain id, msg.sender, signer).
    function _checkKeys(
        address signer,
        bytes calldata blsPublicKey,
        bytes calldata proofOfPossession,
        bytes calldata registrationSignature
    ) private view returns (bytes32 hi, bytes16 lo, bytes32 keyHash) {
        bytes memory keyPoint;
        (keyPoint, hi, lo) = _decodeG1(blsPublicKey);
        bytes memory compressed = abi.encodePacked(hi, lo);
        keyHash = keccak256(compressed);
        require(ownerOfBlsKey[keyHash] == address(0), "BLS key already registered");
        require(
            _verify(keyPoint, compressed, POP_DST, _decodeG2(proofOfPossession)), "invalid proof of possession"
        );
        bytes memory message = abi.encodePacked(block.chainid, msg.sender, signer);
        require(
            _verify(keyPoint, message, REGISTRATION_DST, _decodeG2(registrationSignature)),
            "invalid registration signature"
        );
    }

    /// Sets the commission: at most 10000 bps, and at most 100 bps above what it was when the
    /// current epoch began. Lowering is unrestricted.
    function setCommission(uint16 commissionBps) external {
        Validator storage v = validators[msg.sender];
        require(v.registered, "not a validator");
        require(commissionBps <= MAX_BPS, "commission over 10000 bps");
        if (v.commissionEpoch != currentEpoch) {
            v.commissionEpoch = uint64(currentEpoch);
            v.commissionEpochStartBps = v.commissionBps;
        }
        require(
            uint256(commissionBps) <= uint256(v.commissionEpochStartBps) + MAX_COMMISSION_STEP_BPS,
            "commission rises over 100 bps in an epoch"
        );
        uint16 old = v.commissionBps;
        v.commissionBps = commissionBps;
        emit CommissionChanged(msg.sender, old, commissionBps);
    }

    /// Rotates the signer; the set of the next epoch carries the new one. A signer address is
    /// never reused by another validator.
    function setSigner(address signer) external {
        Validator storage v = validators[msg.sender];
        require(v.registered, "not a validator");
        require(signer != address(0), "zero signer");
        require(ownerOfSigner[signer] == address(0), "signer already registered");
        address old = v.signer;
        v.signer = signer;
        ownerOfSigner[signer] = msg.sender;
        emit SignerChanged(msg.sender, old, signer);
    }

    // ---------------------------------------------------------------------------------------
    // Delegations
    // ---------------------------------------------------------------------------------------

    /// Stakes msg.value (>= minDelegation) with `validator` (the owner tops up its self-stake
    /// the same way).
    function delegate(address validator) external payable nonReentrant {
        Validator storage v = validators[validator];
        require(v.registered, "not a validator");
        require(!v.tombstoned, "validator tombstoned");
        require(msg.value >= minDelegation && msg.value > 0, "delegation below minDelegation");
        _addStake(msg.sender, validator, msg.value);
        emit Delegated(msg.sender, validator, msg.value);
    }

    /// Starts unbonding `amount` of msg.sender's stake with `validator`; it can be withdrawn
    /// once `unbondingEpochs` epochs have ended.
    function undelegate(address validator, uint256 amount) external nonReentrant {
        Delegation storage d = delegations[msg.sender][validator];
        require(amount > 0, "zero amount");
        require(d.stake >= amount, "amount above stake");
        require(unbondingCount[msg.sender][validator] < MAX_UNBONDING_ENTRIES, "too many unbonding entries");
        require(block.number <= type(uint64).max, "block number overflows");
        Validator storage v = validators[validator];
        _settle(d, v);
        uint256 before = d.stake;
        d.stake = before - amount;
        v.totalStake -= amount;
        totalBonded -= amount;
        totalUnbonding += amount;
        uint256 completes = currentEpoch + unbondingEpochs;
        require(completes <= type(uint64).max, "unbonding epoch overflows");
        Unbonding[] storage list = unbondings[msg.sender];
        uint256 n = list.length;
        uint256 i;
        while (i < n && !(list[i].validator == validator && list[i].startBlock == block.number)) i++;
        if (i < n) {
            list[i].amount += amount; // a second undelegation in this block joins its entry
        } else {
            list.push(Unbonding(validator, amount, uint64(completes), uint64(block.number)));
            unbondingCount[msg.sender][validator] += 1;
        }
        _recordChange(msg.sender, validator, d.stake, true);
        emit Undelegated(msg.sender, validator, amount, completes);
        if (msg.sender == validator && before >= minSelfStake && d.stake < minSelfStake) {
            emit ValidatorLeft(validator, d.stake);
        }
    }

    /// Pays msg.sender every unbonding entry that has completed; reverts if none has.
    function withdrawUnbonded() external nonReentrant {
        Unbonding[] storage list = unbondings[msg.sender];
        uint256 total;
        bool any;
        uint256 i;
        while (i < list.length) {
            Unbonding storage u = list[i];
            if (u.completesAtEpoch <= currentEpoch) {
                total += u.amount;
                unbondingCount[msg.sender][u.validator] -= 1;
                address validator = u.validator;
                any = true;
                list[i] = list[list.length - 1];
                list.pop();
                _forgetIfEmpty(msg.sender, validator);
            } else {
                i++;
            }
        }
        require(any, "nothing unbonded to withdraw");
        totalUnbonding -= total;
        emit Withdrawn(msg.sender, total);
        if (total > 0) _send(msg.sender, total); // entries slashed to zero pay nothing
    }

    /// Pays msg.sender its rewards from its delegation to `validator` (and, for the owner,
    /// the validator's commission).
    function claimRewards(address validator) external nonReentrant {
        Delegation storage d = delegations[msg.sender][validator];
        Validator storage v = validators[validator];
        _settle(d, v);
        uint256 amount = d.pendingRewards;
        d.pendingRewards = 0;
        if (msg.sender == validator) {
            amount += v.commissionOwed;
            v.commissionOwed = 0;
        }
        require(amount > 0, "no rewards");
        totalRewardsOwed -= amount;
        emit RewardsClaimed(msg.sender, validator, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------------------------------
    // System entry points
    // ---------------------------------------------------------------------------------------

    /// Called by the protocol at the start of block h+1 to pay for block h (h = block.number
    /// - 1): the pool is the balance above what is owed to stakers (h's base fees and the
    /// protocol's issuance credit, plus any earlier remainder). `proposerBonusBps` of it goes
    /// to h's miner; the rest to the validators of `signers` (owners, ascending; entries not
    /// above the previous one are skipped) by their power in the set that decided h. Block 1
    /// pays nothing.
    function distributeBlockReward(address proposer, address[] calldata signers) external onlySystem {
        if (block.number <= 1) return;
        uint256 h = block.number - 1;
        _countUptime(h, signers);
        uint256 owed = totalBonded + totalUnbonding + totalRewardsOwed;
        uint256 balance = address(this).balance;
        if (balance <= owed) return;
        uint256 pool = balance - owed;

        uint256 epoch = (h > setChangedAtBlock || currentEpoch == 0) ? currentEpoch : currentEpoch - 1;
        uint256 signedPower;
        address prev;
        for (uint256 i = 0; i < signers.length; i++) {
            address s = signers[i];
            if (s <= prev) continue;
            prev = s;
            signedPower += powerAt[epoch][s];
        }
        if (signedPower == 0) return; // nothing certified: the pool waits for the next block

        uint256 bonus = pool * proposerBonusBps / MAX_BPS;
        uint256 rest = pool - bonus;
        uint256 distributed;
        prev = address(0);
        for (uint256 i = 0; i < signers.length; i++) {
            address s = signers[i];
            if (s <= prev) continue;
            prev = s;
            uint256 power = powerAt[epoch][s];
            if (power == 0) continue;
            uint256 share = rest * power / signedPower;
            distributed += share;
            _creditValidator(s, share);
        }
        totalRewardsOwed += distributed;
        emit BlockRewarded(h, proposer, pool, distributed);
        if (bonus > 0 && proposer != address(0) && proposer != address(this)) {
            // Only the 2300-gas stipend: the miner cannot re-enter or make the block fail. If
            // it refuses, the bonus stays in the pool for the next block.
            (bool ok,) = proposer.call{value: bonus, gas: 0}("");
            emit ProposerBonusPaid(h, proposer, bonus, ok);
        }
    }

    /// Called by the protocol after the rewards call, once for each offence the block carries
    /// (docs/block-format.md): slashes `slashDoubleSignBps` of the stake bonded with `owner` at
    /// `offenceBlock` (see `_slash`), then jails and tombstones it. An offence slashed before,
    /// an owner already tombstoned, or evidence older than the unbonding period changes nothing
    /// but an event: voters refuse blocks carrying such evidence; this is the contract's guard.
    function slashDoubleSign(address owner, uint64 offenceBlock, uint32 round, uint8 kind) external onlySystem {
        bytes32 offence = offenceId(owner, offenceBlock, round, kind);
        Validator storage v = validators[owner];
        string memory why;
        if (!v.registered) why = "not a validator";
        else if (offenceSlashedAt[offence] != 0) why = "offence already slashed";
        else if (v.tombstoned) why = "validator already tombstoned";
        else if (offenceBlock == 0 || offenceBlock >= block.number) why = "offence not before this block";
        else if (offenceBlock < _oldestSlashableBlock()) why = "evidence older than the unbonding period";
        if (bytes(why).length != 0) {
            emit DoubleSignIgnored(owner, offence, why);
            return;
        }
        offenceSlashedAt[offence] = block.number;
        uint256 bps = slashDoubleSignBps;
        emit Slashed(owner, offence, offenceBlock, bps, _slash(owner, offenceBlock, bps));
        v.tombstoned = true;
        _jail(owner, v, true);
    }

    /// Lets a validator jailed for downtime back among the candidates once `jailEpochs` epochs
    /// have ended; it rejoins the set at the next epoch's end if its stake qualifies.
    function unjail() external {
        Validator storage v = validators[msg.sender];
        require(v.registered, "not a validator");
        require(!v.tombstoned, "validator tombstoned");
        require(v.jailed, "not jailed");
        require(currentEpoch >= v.jailedUntilEpoch, "still jailed");
        v.jailed = false;
        delete uptime[msg.sender];
        if (v.listIndex == 0 && delegations[msg.sender][msg.sender].stake >= minSelfStake) {
            validatorList.push(msg.sender);
            v.listIndex = uint64(validatorList.length);
        }
        emit Unjailed(msg.sender);
    }

    /// Called by the protocol at the last block of the current epoch: installs the set of the
    /// next epoch, the top `maxValidators` candidates by total stake (ties: lower address
    /// first) with self-stake >= minSelfStake and at least 1 BTT of stake; power = floor(stake
    /// / 1 BTT). If no validator qualifies the current set carries over.
    function endEpoch() external onlySystem {
        _installSet(currentEpoch + 1);
        setChangedAtBlock = block.number;
    }

    // ---------------------------------------------------------------------------------------
    // Views
    // ---------------------------------------------------------------------------------------

    function validatorInfo(address owner)
        external
        view
        returns (uint256 selfStake, uint256 totalStake, uint16 commissionBps, uint8 status, uint64 jailedUntilEpoch)
    {
        Validator storage v = validators[owner];
        selfStake = delegations[owner][owner].stake;
        totalStake = v.totalStake;
        commissionBps = v.commissionBps;
        jailedUntilEpoch = v.jailedUntilEpoch;
        if (!v.registered) status = STATUS_NONE;
        else if (v.tombstoned) status = STATUS_TOMBSTONED;
        else if (v.jailed) status = STATUS_JAILED;
        else if (powerAt[currentEpoch][owner] > 0) status = STATUS_ACTIVE;
        else if (selfStake >= minSelfStake) status = STATUS_CANDIDATE;
        else status = STATUS_NONE;
    }

    /// The identity of an offence: (validator, height, round, kind). Each slashes once.
    function offenceId(address owner, uint64 offenceBlock, uint32 round, uint8 kind) public pure returns (bytes32) {
        return keccak256(abi.encode(owner, offenceBlock, round, kind));
    }

    /// Delegators with stake or unbonding entries at `validator` (what slashing visits).
    function delegatorsOfValidator(address validator) external view returns (address[] memory) {
        return delegatorsOf[validator];
    }

    /// A validator's signer, compressed BLS key and unclaimed commission.
    function validatorKeys(address owner)
        external
        view
        returns (address signer, bytes memory blsPublicKey, uint256 commissionOwed)
    {
        Validator storage v = validators[owner];
        return (v.signer, _key(v), v.commissionOwed);
    }

    function delegationOf(address delegator, address validator)
        external
        view
        returns (uint256 stake, uint256 pendingRewards)
    {
        Delegation storage d = delegations[delegator][validator];
        stake = d.stake;
        pendingRewards =
            d.pendingRewards + d.stake * (validators[validator].rewardPerStake - d.rewardPerStakeSnapshot) / REWARD_SCALE;
    }

    function unbondingOf(address delegator) external view returns (Unbonding[] memory) {
        return unbondings[delegator];
    }

    /// Owners of the current epoch's set, by decreasing stake.
    function activeValidators() external view returns (address[] memory) {
        return activeSet;
    }

    /// Owners `endEpoch` considers: validators whose self-stake was at least `minSelfStake` at
    /// the last epoch end, and those registered or topped up since (see `validatorList`).
    function candidates() external view returns (address[] memory) {
        return validatorList;
    }

    /// The current epoch's set as the node needs it: owners, signers (as of the epoch's
    /// start), compressed BLS keys and powers, in the same order.
    function validatorSet()
        external
        view
        returns (
            uint256 epoch,
            address[] memory owners,
            address[] memory signers,
            bytes[] memory blsKeys,
            uint256[] memory powers
        )
    {
        epoch = currentEpoch;
        uint256 n = activeSet.length;
        owners = new address[](n);
        signers = new address[](n);
        blsKeys = new bytes[](n);
        powers = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            address o = activeSet[i];
            owners[i] = o;
            signers[i] = signerAt[epoch][o];
            blsKeys[i] = _key(validators[o]);
            powers[i] = powerAt[epoch][o];
        }
    }

    /// Number of owners `endEpoch` considers (see `validatorList`).
    function validatorCount() external view returns (uint256) {
        return validatorList.length;
    }

    // ---------------------------------------------------------------------------------------
    // Internals: accounting
    // ---------------------------------------------------------------------------------------

    function _register(
        address owner,
        address signer,
        bytes32 hi,
        bytes16 lo,
        bytes32 keyHash,
        uint16 commissionBps
    ) private {
        require(owner != address(0) && signer != address(0), "zero owner or signer");
        require(!validators[owner].registered, "owner already registered");
        require(ownerOfSigner[signer] == address(0), "signer already registered");
        require(ownerOfBlsKey[keyHash] == address(0), "BLS key already registered");
        Validator storage v = validators[owner];
        v.registered = true;
        v.signer = signer;
        v.commissionBps = commissionBps;
        v.commissionEpochStartBps = commissionBps;
        v.commissionEpoch = uint64(currentEpoch);
        v.blsKeyHi = hi;
        v.blsKeyLo = lo;
        ownerOfSigner[signer] = owner;
        ownerOfBlsKey[keyHash] = owner;
        validatorList.push(owner);
        v.listIndex = uint64(validatorList.length);
    }

    /// Moves the delegation's rewards accrued since its snapshot into pendingRewards.
    function _settle(Delegation storage d, Validator storage v) private {
        uint256 acc = v.rewardPerStake;
        if (d.stake > 0) {
            d.pendingRewards += d.stake * (acc - d.rewardPerStakeSnapshot) / REWARD_SCALE;
        }
        d.rewardPerStakeSnapshot = acc;
    }

    function _addStake(address delegator, address validator, uint256 amount) private {
        Delegation storage d = delegations[delegator][validator];
        Validator storage v = validators[validator];
        _settle(d, v);
        if (delegatorSlot[delegator][validator] == 0) {
            address[] storage list = delegatorsOf[validator];
            require(list.length < MAX_DELEGATORS, "validator has MAX_DELEGATORS delegators");
            list.push(delegator);
            delegatorSlot[delegator][validator] = list.length;
        }
        d.stake += amount;
        v.totalStake += amount;
        totalBonded += amount;
        _recordChange(delegator, validator, d.stake, false);
        if (delegator == validator && v.listIndex == 0 && d.stake >= minSelfStake) {
            validatorList.push(validator); // back among the candidates
            v.listIndex = uint64(validatorList.length);
        }
    }

    /// Appends a change of (delegator, validator)'s bonded stake to its history, first dropping
    /// the changes no acceptable evidence can need: before the oldest slashable block only the
    /// last change matters (it is the stake bonded at any later offence).
    function _recordChange(address delegator, address validator, uint256 stakeAfter, bool undelegation) private {
        StakeChange[] storage h = stakeHistory[delegator][validator];
        uint256 oldest = _oldestSlashableBlock();
        uint256 n = h.length;
        uint256 k;
        while (k + 1 < n && h[k + 1].blockNumber < oldest) k++;
        if (k > 0) {
            for (uint256 j = k; j < n; j++) h[j - k] = h[j];
            for (uint256 j = 0; j < k; j++) h.pop();
        }
        require(h.length < MAX_STAKE_CHANGES, "too many stake changes in the unbonding period");
        require(stakeAfter <= type(uint184).max, "stake overflows");
        h.push(StakeChange(uint64(block.number), undelegation, uint184(stakeAfter)));
    }

    /// Offences at or after this block may still be slashed: those of an epoch whose unbonding
    /// entries cannot have completed yet (epoch + unbondingEpochs > currentEpoch).
    function _oldestSlashableBlock() private view returns (uint256) {
        uint256 span = unbondingEpochs;
        if (currentEpoch + 1 <= span) return 1;
        return (currentEpoch + 1 - span) * epochLength + 1;
    }

    /// Drops (delegator, validator) from the validator's delegators once it holds nothing.
    function _forgetIfEmpty(address delegator, address validator) private {
        if (delegations[delegator][validator].stake != 0 || unbondingCount[delegator][validator] != 0) return;
        uint256 slot = delegatorSlot[delegator][validator];
        if (slot == 0) return;
        address[] storage list = delegatorsOf[validator];
        address last = list[list.length - 1];
        list[slot - 1] = last;
        delegatorSlot[last][validator] = slot;
        list.pop();
        delete delegatorSlot[delegator][validator];
        delete stakeHistory[delegator][validator];
    }

    /// Takes `bps` of the stake that was bonded with `owner` when block `offenceBlock` began,
    /// from every delegator: the part still bonded, and the part that left into unbonding
    /// entries after the offence. Stake added after the offence is not touched; an
    /// undelegation takes the newest stake first. The slashed wei stay in the contract, no
    /// longer owed to anyone: they join the reward pool of the next block.
    function _slash(address owner, uint256 offenceBlock, uint256 bps) private returns (uint256 total) {
        address[] storage list = delegatorsOf[owner];
        uint256 n = list.length;
        for (uint256 k = 0; k < n; k++) {
            total += _slashDelegator(list[k], owner, offenceBlock, bps);
        }
    }

    /// `_slash` for one delegator: replays its stake changes since the offence. The lowest
    /// level reached since is what stayed bonded of the offence's stake; each undelegation that
    /// went below the previous lowest took that much of it into its entry.
    function _slashDelegator(address delegator, address owner, uint256 offenceBlock, uint256 bps)
        private
        returns (uint256 total)
    {
        StakeChange[] storage h = stakeHistory[delegator][owner];
        uint256 m = h.length;
        uint256 i;
        uint256 low;
        while (i < m && h[i].blockNumber < offenceBlock) {
            low = h[i].stakeAfter;
            i++;
        }
        if (low == 0) return 0;
        for (; i < m; i++) {
            StakeChange storage c = h[i];
            uint256 level = c.stakeAfter;
            if (level >= low) continue;
            if (c.undelegation) total += _slashEntry(delegator, owner, c.blockNumber, (low - level) * bps / MAX_BPS);
            low = level;
        }
        Delegation storage d = delegations[delegator][owner];
        if (low > d.stake) low = d.stake; // an earlier slash took part of it
        uint256 cut = low * bps / MAX_BPS;
        if (cut == 0) return total;
        Validator storage v = validators[owner];
        _settle(d, v);
        d.stake -= cut;
        v.totalStake -= cut;
        totalBonded -= cut;
        total += cut;
    }

    function _slashEntry(address delegator, address validator, uint64 startBlock, uint256 cut)
        private
        returns (uint256)
    {
        Unbonding[] storage list = unbondings[delegator];
        for (uint256 i = 0; i < list.length; i++) {
            Unbonding storage u = list[i];
            if (u.validator != validator || u.startBlock != startBlock) continue;
            if (cut > u.amount) cut = u.amount;
            u.amount -= cut;
            totalUnbonding -= cut;
            return cut;
        }
        return 0; // withdrawn: only possible for offences the window no longer accepts
    }

    function _jail(address owner, Validator storage v, bool tombstone) private {
        uint256 until = tombstone ? type(uint64).max : currentEpoch + jailEpochs;
        if (until > type(uint64).max) until = type(uint64).max;
        v.jailed = true;
        v.jailedUntilEpoch = uint64(until);
        emit Jailed(owner, until, tombstone);
    }

    /// Counts the blocks each member of the current set did not sign, in windows of
    /// `downtimeWindow` blocks, from the certificate of block `h`; a member that missed more
    /// than the window tolerates is jailed and slashed `slashDowntimeBps` of its bonded stake.
    /// The block that ends an epoch is not counted (its set is no longer stored as a list).
    function _countUptime(uint256 h, address[] calldata signers) private {
        if (h <= setChangedAtBlock) return;
        uint256 mark = h | (1 << 255); // transient marks of this block's signers; slot 0 is the lock
        for (uint256 i = 0; i < signers.length; i++) {
            uint256 key = uint256(uint160(signers[i])) | (1 << 254);
            assembly {
                tstore(key, mark)
            }
        }
        uint64 index = uint64((h - 1) / downtimeWindow);
        uint256 n = activeSet.length;
        for (uint256 i = 0; i < n; i++) {
            address o = activeSet[i];
            uint256 key = uint256(uint160(o)) | (1 << 254);
            uint256 seen;
            assembly {
                seen := tload(key)
            }
            if (seen != mark) _countMiss(o, h, index);
        }
    }

    /// One more block `owner` did not sign in window `window`; past what the window tolerates,
    /// it is jailed and slashed `slashDowntimeBps` of the stake bonded with it now.
    function _countMiss(address owner, uint256 h, uint64 window) private {
        Validator storage v = validators[owner];
        if (v.jailed) return;
        Uptime storage u = uptime[owner];
        uint64 missed = u.window == window ? u.missed + 1 : 1;
        u.window = window;
        u.missed = missed;
        if (missed <= downtimeWindow * (MAX_BPS - downtimeMinSignedBps) / MAX_BPS) return;
        _jail(owner, v, false);
        uint256 bps = slashDowntimeBps;
        bytes32 offence = keccak256(abi.encode(owner, window, "downtime"));
        emit Slashed(owner, offence, h, bps, _slash(owner, block.number + 1, bps));
    }

    function _creditValidator(address owner, uint256 share) private {
        Validator storage v = validators[owner];
        uint256 commission = share * v.commissionBps / MAX_BPS;
        uint256 stake = v.totalStake;
        if (stake == 0) {
            commission = share; // nobody left staking: the owner keeps it all
        } else {
            v.rewardPerStake += (share - commission) * REWARD_SCALE / stake;
        }
        v.commissionOwed += commission;
        emit ValidatorRewarded(owner, share, commission);
    }

    function _installSet(uint256 epoch) private {
        uint256 k = maxValidators;
        uint256 total = validatorList.length;
        if (k > total) k = total;
        address[] memory chosen = new address[](k);
        uint256[] memory stakes = new uint256[](k);
        uint256 n;
        uint256 i = 0;
        while (i < total) {
            address o = validatorList[i];
            Validator storage v = validators[o];
            uint256 stake = v.totalStake;
            if (v.tombstoned || delegations[o][o].stake < minSelfStake) {
                // Out until a self-stake top-up: drop it from the list (swap with the last).
                total -= 1;
                address last = validatorList[total];
                validatorList[i] = last;
                validators[last].listIndex = uint64(i + 1);
                validatorList.pop();
                v.listIndex = 0;
                continue;
            }
            i++;
            if (v.jailed || stake < BTT) continue;
            // Insertion into the sorted top-k (stake descending, address ascending).
            if (n == k && !_before(stake, o, stakes[k - 1], chosen[k - 1])) continue;
            uint256 j = n < k ? n : k - 1;
            while (j > 0 && _before(stake, o, stakes[j - 1], chosen[j - 1])) {
                stakes[j] = stakes[j - 1];
                chosen[j] = chosen[j - 1];
                j--;
            }
            stakes[j] = stake;
            chosen[j] = o;
            if (n < k) n++;
        }

        uint256 totalPower;
        if (n == 0) {
            // Nobody qualifies: keep the current set rather than halt the chain.
            uint256 m = activeSet.length;
            for (i = 0; i < m; i++) {
                address o = activeSet[i];
                uint256 power = powerAt[currentEpoch][o];
                powerAt[epoch][o] = power;
                signerAt[epoch][o] = signerAt[currentEpoch][o];
                totalPower += power;
            }
            currentEpoch = epoch;
            emit EpochEnded(epoch, m, totalPower);
            return;
        }
        // Overwrite the old set in place (cheaper than clearing it), then trim it.
        uint256 old = activeSet.length;
        for (i = 0; i < n; i++) {
            address o = chosen[i];
            uint256 power = stakes[i] / BTT;
            if (i < old) activeSet[i] = o;
            else activeSet.push(o);
            powerAt[epoch][o] = power;
            signerAt[epoch][o] = validators[o].signer;
            totalPower += power;
        }
        while (activeSet.length > n) activeSet.pop();
        currentEpoch = epoch;
        emit EpochEnded(epoch, n, totalPower);
    }

    function _before(uint256 stakeA, address a, uint256 stakeB, address b) private pure returns (bool) {
        return stakeA > stakeB || (stakeA == stakeB && a < b);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        require(ok, "transfer failed");
    }

    function _key(Validator storage v) private view returns (bytes memory) {
        if (!v.registered) return "";
        return abi.encodePacked(v.blsKeyHi, v.blsKeyLo);
    }

    // ---------------------------------------------------------------------------------------
    // Internals: BLS12-381 (min-pk: keys in G1, signatures in G2) over EIP-2537
    // ---------------------------------------------------------------------------------------

    /// Decodes a 96-byte uncompressed G1 point (ZCash serialization, flags clear) into its
    /// EIP-2537 form and its 48-byte compressed form (as hi || lo). Curve and subgroup
    /// membership are checked by the pairing precompile.
    function _decodeG1(bytes calldata raw) private pure returns (bytes memory point, bytes32 hi, bytes16 lo) {
        require(raw.length == 96, "BLS key: 96-byte uncompressed G1 point expected");
        require(uint8(raw[0]) & 0xe0 == 0, "BLS key: flag bits set");
        uint256 xHi = uint128(bytes16(raw[0:16]));
        uint256 xLo = uint256(bytes32(raw[16:48]));
        uint256 yHi = uint128(bytes16(raw[48:64]));
        uint256 yLo = uint256(bytes32(raw[64:96]));
        require(xHi | xLo | yHi | yLo != 0, "BLS key: point at infinity");
        require(_ltP(xHi, xLo) && _ltP(yHi, yLo), "BLS key: coordinate not below p");
        point = abi.encodePacked(bytes16(0), raw[0:48], bytes16(0), raw[48:96]);
        bool ySign = yHi > HALF_P_HI || (yHi == HALF_P_HI && yLo > HALF_P_LO);
        uint256 flags = ySign ? 0xa0 : 0x80;
        hi = bytes32(((xHi | (flags << 120)) << 128) | (xLo >> 128));
        lo = bytes16(uint128(xLo));
    }

    /// Decodes a 192-byte uncompressed G2 point (ZCash serialization x.c1 || x.c0 || y.c1 ||
    /// y.c0, flags clear) into its EIP-2537 form (x.c0 || x.c1 || y.c0 || y.c1, padded).
    function _decodeG2(bytes calldata raw) private pure returns (bytes memory) {
        require(raw.length == 192, "BLS signature: 192-byte uncompressed G2 point expected");
        require(uint8(raw[0]) & 0xe0 == 0, "BLS signature: flag bits set");
        uint256 any;
        for (uint256 i = 0; i < 192; i += 32) {
            any |= uint256(bytes32(raw[i:i + 32]));
        }
        require(any != 0, "BLS signature: point at infinity");
        return abi.encodePacked(
            bytes16(0), raw[48:96], bytes16(0), raw[0:48], bytes16(0), raw[144:192], bytes16(0), raw[96:144]
        );
    }

    function _ltP(uint256 hi, uint256 lo) private pure returns (bool) {
        return hi < P_HI || (hi == P_HI && lo < P_LO);
    }

    /// e(key, H(message)) == e(G1, signature), as e(key, H(m)) * e(-G1, sig) == 1.
    function _verify(bytes memory keyPoint, bytes memory message, bytes memory dst, bytes memory sigPoint)
        private
        view
        returns (bool)
    {
        bytes memory h = _hashToG2(message, dst);
        (bool ok, bytes memory out) =
            BLS12_PAIRING_CHECK.staticcall{gas: 150_000}(abi.encodePacked(keyPoint, h, NEG_G1, sigPoint));
        require(ok && out.length == 32, "BLS: point not on the curve or not in the subgroup");
        return uint256(bytes32(out)) == 1;
    }

    /// hash_to_curve for G2 (RFC 9380, BLS12381G2_XMD:SHA-256_SSWU_RO_): two field elements
    /// from expand_message_xmd, each mapped by MAP_FP2_TO_G2 (which clears the cofactor; the
    /// clearing is linear, so mapping then adding equals adding then clearing).
    function _hashToG2(bytes memory message, bytes memory dst) private view returns (bytes memory) {
        bytes memory uniform = _expandMessageXmd(message, dst);
        bytes memory q0 = _mapToG2(abi.encodePacked(_reduce(uniform, 0), _reduce(uniform, 64)));
        bytes memory q1 = _mapToG2(abi.encodePacked(_reduce(uniform, 128), _reduce(uniform, 192)));
        (bool ok, bytes memory sum) = BLS12_G2ADD.staticcall{gas: 10_000}(abi.encodePacked(q0, q1));
        require(ok && sum.length == 256, "BLS: G2ADD failed");
        return sum;
    }

    function _mapToG2(bytes memory fp2) private view returns (bytes memory) {
        (bool ok, bytes memory q) = BLS12_MAP_FP2_TO_G2.staticcall{gas: 60_000}(fp2);
        require(ok && q.length == 256, "BLS: MAP_FP2_TO_G2 failed");
        return q;
    }

    /// The 64 bytes of `uniform` at `offset` reduced mod p, as a 64-byte EIP-2537 field element.
    function _reduce(bytes memory uniform, uint256 offset) private view returns (bytes memory) {
        bytes32 a;
        bytes32 b;
        assembly {
            a := mload(add(add(uniform, 32), offset))
            b := mload(add(add(uniform, 64), offset))
        }
        (bool ok, bytes memory r) = MODEXP.staticcall{gas: 20_000}(
            abi.encodePacked(uint256(64), uint256(1), uint256(48), a, b, uint8(1), bytes16(uint128(P_HI)), P_LO)
        );
        require(ok && r.length == 48, "modexp failed");
        return abi.encodePacked(bytes16(0), r);
    }

    /// expand_message_xmd (RFC 9380 section 5.3.1) with SHA-256, 256 bytes out.
    function _expandMessageXmd(bytes memory message, bytes memory dst) private pure returns (bytes memory out) {
        require(dst.length <= 255, "DST too long");
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        bytes32 b0 = sha256(abi.encodePacked(bytes32(0), bytes32(0), message, uint16(256), uint8(0), dstPrime));
        bytes32 bi = sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        out = new bytes(256);
        assembly {
            mstore(add(out, 32), bi)
        }
        for (uint256 i = 2; i <= 8; i++) {
            bi = sha256(abi.encodePacked(b0 ^ bi, uint8(i), dstPrime));
            assembly {
                mstore(add(out, mul(i, 32)), bi)
            }
        }
    }
}
